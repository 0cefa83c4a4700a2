"""Local folders and file:// URIs as an object store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from unitok.connectors.objects import ObjectInfo, key_selected
from unitok.pipeline.core.text import valid_unicode


def path_from_uri(uri: str) -> Path:
    if uri.startswith("file://"):
        # A name that is not UTF-8 is percent-encoded byte by byte in its URI (Path.as_uri): the same
        # bytes back, as the file system has them.
        return Path(unquote(urlparse(uri).path, errors="surrogateescape"))
    return Path(uri).expanduser()


class SourceNotFound(FileNotFoundError):
    pass


class LocalStore:
    """A folder (or one file). Symbolic links are skipped and counted (skipped_links) unless
    follow_symlinks: then links to files and folders are followed wherever they point, each real folder
    walked once (a link back up the tree is not a loop)."""

    def __init__(self, uri: str, follow_symlinks: bool = False):
        self.root = path_from_uri(uri).resolve()
        self.follow_symlinks = follow_symlinks
        self.skipped_links = 0
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
            # The URI carries a name that is not UTF-8 exactly (percent-encoded bytes); the key is for
            # people and globs, its undecodable bytes shown as U+FFFD.
            key = valid_unicode(key)[0]
            yield ObjectInfo(uri=p.as_uri(), key=key, size=st.st_size, modified_at=st.st_mtime)

    def _walk(self, root: Path) -> Iterator[Path]:
        seen: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=self.follow_symlinks):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            keep = []
            for d in sorted(dirnames):
                if d.startswith("."):
                    continue
                if not self.follow_symlinks and os.path.islink(os.path.join(dirpath, d)):
                    self.skipped_links += 1
                    continue
                keep.append(d)
            dirnames[:] = keep
            for name in sorted(filenames):
                if name.startswith("."):
                    continue  # hidden files (.DS_Store, editor swap files)
                p = Path(dirpath, name)
                if p.is_symlink() and not self.follow_symlinks:
                    self.skipped_links += 1
                    continue
                if p.is_file():
                    yield p

    @contextmanager
    def fetch(self, obj: ObjectInfo) -> Iterator[tuple[Path, ObjectInfo]]:
        """The file itself; its version is its content hash, taken by whoever reads it (None here)."""
        yield path_from_uri(obj.uri), obj
