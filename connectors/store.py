"""Pick the object store for a URI."""

from __future__ import annotations

from connectors.local import LocalStore


def open_store(uri: str) -> LocalStore:
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if scheme == "file":
        return LocalStore(uri)
    raise ValueError(f"unsupported source scheme {scheme}://")
