"""The object-store interface every source implements: list objects, then read one as a local file."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object. version is the store's version id/ETag, or None where the store has none
    (local files: the reader fills in a content hash)."""

    uri: str
    key: str  # path relative to the listed prefix, '/'-separated
    size: int
    modified_at: float  # POSIX seconds
    version: str | None = None

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


class ObjectStore(Protocol):
    def list_objects(self, include: list[str], exclude: list[str]) -> Iterator[ObjectInfo]: ...

    def fetch(self, obj: ObjectInfo) -> AbstractContextManager[tuple[Path, ObjectInfo]]:
        """A local file with the object's bytes for the duration of the context, and obj as those bytes
        are: the version read (which may be newer than the listed one), or None where the reader
        hashes the file."""
        ...


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    # gitignore-like: a pattern without '/' matches the file name at any depth; '**' spans folders.
    if "/" not in pattern:
        pattern = "**/" + pattern
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    # DOTALL: a name may hold any character, a newline too, and '*' still spans it.
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def key_selected(key: str, include: list[str], exclude: list[str]) -> bool:
    """Include/exclude globs on a relative key; case-insensitive so '*.pdf' also takes 'X.PDF'."""
    if not any(_glob_regex(p).match(key) for p in include):
        return False
    return not any(_glob_regex(p).match(key) for p in exclude)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()
