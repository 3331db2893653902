"""Content-addressed blob storage. Keys are SHA-256 hex digests computed here, so no path is
ever built from user input."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    pass


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store `data`; return its key. Storing the same bytes twice stores them once."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


def blob_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a blob key: {key!r}")
    return key


class LocalBlobStore:
    """Blobs on local disk under `root/ab/cd/<key>`, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
