"""Local folders and file:// URIs as an object store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from unitok.connectors.objects import ObjectInfo, key_selected


def path_from_uri(uri: str) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


class SourceNotFound(FileNotFoundError):
    pass


class LocalStore:
    def __init__(self, uri: str):
        self.root = path_from_uri(uri).resolve()
        if not self.root.exists():
            raise SourceNotFound(f"source {uri} does not exist")

    def list_objects(self, include: list[str], exclude: list[str]) -> Iterator[ObjectInfo]:
        """Files under the root in a stable (sorted) order; a single file lists itself."""
        if self.root.is_file():
            candidates: Iterator[Path] = iter([self.root])
            base = self.root.parent
        else:
            candidates = self._walk(self.root)
            base = self.root
        for p in candidates:
            key = p.relative_to(base).as_posix()
            if not key_selected(key, include, exclude):
                continue
            st = p.stat()
            yield ObjectInfo(uri=p.as_uri(), key=key, size=st.st_size, modified_at=st.st_mtime)

    @staticmethod
    def _walk(root: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue  # hidden files (.DS_Store, editor swap files)
                p = Path(dirpath, name)
                if p.is_file():
                    yield p

    @contextmanager
    def fetch(self, obj: ObjectInfo) -> Iterator[tuple[Path, ObjectInfo]]:
        """The file itself; its version is its content hash, taken by whoever reads it (None here)."""
        yield path_from_uri(obj.uri), obj
