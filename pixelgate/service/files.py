"""Stored results: a record per file, bytes in the blob store, retention, and links."""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable
from datetime import timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.rows import new_record, table, values_of
from pixelgate.db.tables import StoredFile
from pixelgate.errors import NotFound, StorageError
from pixelgate.providers import GeneratedImage
from pixelgate.service.media import MediaLinks
from pixelgate.storage import BlobNotFound, BlobStore

log = logging.getLogger(__name__)

RECENT_FILES = 1024
INSERT_FILE = insert(table(StoredFile))


def put_blob(blobs: BlobStore, data: bytes, *, what: str) -> str:
    """`blobs.put`, with a failed write (a full disk, a read-only volume) as a `StorageError`."""
    try:
        return blobs.put(data)
    except OSError as exc:
        log.error("storing %s failed: %s", what, exc)
        reason = exc.strerror or type(exc).__name__  # no path: the message reaches the caller
        raise StorageError(f"Storing {what} failed: {reason}") from exc


class FileService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        links: MediaLinks,
        clock: Clock,
        *,
        retention: timedelta,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._clock = clock
        self.links = links
        self._retention = retention
        self._recent: OrderedDict[str, StoredFile] = OrderedDict()
        """The latest records saved by this process, by id, oldest first. A record changes
        only by its deletion, which `sweep_expired` makes after it expires."""
        self._recent_lock = threading.Lock()

    def store(self, *, tenant_id: str, job_id: str | None, image: GeneratedImage) -> StoredFile:
        record = self.prepare(tenant_id=tenant_id, job_id=job_id, image=image)
        self.save([record])
        return record

    def prepare(self, *, tenant_id: str, job_id: str | None, image: GeneratedImage) -> StoredFile:
        """Store the bytes; return their record, not yet saved: the caller saves it in its own
        transaction (or with `save`). A failed write (a full disk) is a `StorageError`."""
        key = put_blob(self._blobs, image.data, what="the result")
        now = self._clock.now()
        return new_record(
            StoredFile,
            id="file_" + secrets.token_hex(12),
            tenant_id=tenant_id,
            job_id=job_id,
            blob_key=key,
            content_type=image.content_type,
            size_bytes=len(image.data),
            width=image.width,
            height=image.height,
            created_at=now,
            expires_at=now + self._retention,
        )

    def save(self, records: list[StoredFile]) -> None:
        with self._db.session() as session:
            self.record(session, records)
        self.saved(records)

    def record(self, session: Session, records: list[StoredFile]) -> None:
        """Insert the records in the caller's transaction (call `saved` once it commits)."""
        if records:
            session.execute(INSERT_FILE, [values_of(record) for record in records])

    def saved(self, records: list[StoredFile]) -> None:
        """Records just committed (by `save` or in another's transaction): kept a while in
        memory, so handing the new results back (`get_many`) reads no database."""
        with self._recent_lock:
            for record in records:
                self._recent[record.id] = record
            while len(self._recent) > RECENT_FILES:
                self._recent.popitem(last=False)

    def duplicate(self, record: StoredFile, *, tenant_id: str, job_id: str) -> StoredFile:
        """A new, unsaved file record over the same stored bytes (a cache hit's own copy)."""
        now = self._clock.now()
        return StoredFile(
            id="file_" + secrets.token_hex(12),
            tenant_id=tenant_id,
            job_id=job_id,
            blob_key=record.blob_key,
            content_type=record.content_type,
            size_bytes=record.size_bytes,
            width=record.width,
            height=record.height,
            created_at=now,
            expires_at=now + self._retention,
        )

    def get(self, tenant_id: str, file_id: str) -> StoredFile:
        """A tenant's live file; another tenant's, or an expired one, is not found."""
        with self._db.session() as session:
            record = session.get(StoredFile, file_id)
        if record is None or record.tenant_id != tenant_id or self._expired(record):
            raise NotFound(f"No file {file_id!r}", param="file_id")
        return record

    def get_many(
        self, tenant_id: str, file_ids: list[str], *, fresh: bool = False
    ) -> dict[str, StoredFile]:
        """The tenant's live files among these ids. `fresh` reads them from the database, not
        from this process's memory of the files it saved, which does not know of a deletion
        made by another process."""
        known: list[StoredFile | None] = []
        if not fresh:
            with self._recent_lock:
                known = [self._recent.get(file_id) for file_id in file_ids]
        records = [record for record in known if record is not None]
        if len(records) < len(file_ids):
            with self._db.session() as session:
                records = list(
                    session.scalars(
                        select(StoredFile).where(
                            StoredFile.id.in_(file_ids), StoredFile.tenant_id == tenant_id
                        )
                    )
                )
        return {
            record.id: record
            for record in records
            if record.tenant_id == tenant_id and not self._expired(record)
        }

    def read(self, record: StoredFile) -> bytes:
        try:
            return self._blobs.get(record.blob_key)
        except BlobNotFound:
            raise NotFound(f"The bytes of file {record.id!r} are gone") from None

    def open_link(self, token: str) -> tuple[StoredFile, bytes]:
        """The file behind a signed media link, with its bytes."""
        file_id = self.links.verify(token)
        with self._db.session() as session:
            record = session.get(StoredFile, file_id)
        if record is None or self._expired(record):
            raise NotFound("This file no longer exists")
        return record, self.read(record)

    def sweep_expired(self) -> int:
        """Delete files past retention, and blobs no live file uses. Returns files removed."""
        now = self._clock.now()
        with self._db.session() as session:
            expired = session.scalars(select(StoredFile).where(StoredFile.expires_at <= now)).all()
            session.execute(delete(StoredFile).where(StoredFile.expires_at <= now))
        self.forget(record.id for record in expired)
        keys = {record.blob_key for record in expired}
        dropped = self.drop_unused_blobs(keys)
        if expired:
            log.info("retention removed %d files, %d blobs", len(expired), dropped)
        return len(expired)

    def delete(self, tenant_id: str, file_id: str) -> None:
        """Delete a tenant's file: its record, so its links answer 404 at once, then its
        bytes unless another file (a cache hit's copy, identical bytes) still uses them.
        Another tenant's file, or an expired one, is not found."""
        record = self.get(tenant_id, file_id)
        with self._db.session(writes=True) as session:
            deleted = session.execute(
                delete(StoredFile).where(
                    StoredFile.id == file_id, StoredFile.tenant_id == tenant_id
                )
            )
            if not deleted.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"No file {file_id!r}", param="file_id")  # deleted meanwhile
        self.forget([file_id])
        self.drop_unused_blobs({record.blob_key})

    def forget(self, file_ids: Iterable[str]) -> None:
        """Deleted files: no longer handed back from memory (`get_many`)."""
        with self._recent_lock:
            for file_id in file_ids:
                self._recent.pop(file_id, None)

    def drop_unused_blobs(self, keys: Collection[str]) -> int:
        """Delete the blobs among `keys` that no file uses, once the files that used them are
        deleted (committed); returns how many. Blobs are content-addressed and shared between
        files, so a blob is read while another file uses it and is never deleted under it.

        A file that copies a record over the same blob (`ResultCache.serve`) checks in its own
        transaction that the record it copies still exists, so it is either committed before
        this looks (and its blob is kept) or not at all."""
        if not keys:
            return 0
        with self._db.session() as session:
            still_used = set(
                session.scalars(select(StoredFile.blob_key).where(StoredFile.blob_key.in_(keys)))
            )
        unused = set(keys) - still_used
        for key in unused:
            self._blobs.delete(key)
        return len(unused)

    def _expired(self, record: StoredFile) -> bool:
        return record.expires_at is not None and as_utc(record.expires_at) <= self._clock.now()
