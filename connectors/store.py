"""Pick the object store for a URI."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from unitok.connectors.local import LocalStore


def open_store(uri: str, s3: dict[str, Any] | None = None, follow_symlinks: bool = False):
    """A LocalStore or S3Store; S3 stores are cached per process (one client, one connection pool)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if scheme == "file":
        return LocalStore(uri, follow_symlinks)
    if scheme == "s3":
        # Per process: a worker forked from the driver gets a client of its own, not the driver's sockets.
        return _s3_store(uri, tuple(sorted((s3 or {}).items())), os.getpid())
    raise ValueError(f"unsupported source scheme {scheme}://")


@lru_cache(maxsize=8)
def _s3_store(uri: str, options: tuple, pid: int):
    from unitok.connectors.s3 import S3Store

    return S3Store(uri, **dict(options))
