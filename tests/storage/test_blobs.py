from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pixelgate.storage import BlobNotFound, LocalBlobStore


def test_put_returns_the_sha256_and_get_returns_the_bytes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    key = store.put(b"pixels")
    assert key == hashlib.sha256(b"pixels").hexdigest()
    assert store.get(key) == b"pixels"
    assert store.exists(key)


def test_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    assert store.put(b"a") == store.put(b"a")
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    for index in range(5):
        store.put(bytes([index]) * 1000)
    assert not [p for p in tmp_path.rglob(".tmp-*")]


@pytest.mark.parametrize("key", ["../etc/passwd", "abc", "A" * 64, "/" + "a" * 63])
def test_keys_that_are_not_digests_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="not a blob key"):
        LocalBlobStore(tmp_path).get(key)


def test_missing_and_deleted_blobs(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    key = store.put(b"x")
    store.delete(key)
    store.delete(key)
    with pytest.raises(BlobNotFound):
        store.get(key)
