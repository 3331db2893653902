"""Stored results: a record per file, bytes in the blob store, retention, and links."""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from datetime import timedelta

from sqlalchemy import Connection, Insert, Select, bindparam, delete, insert, select, update

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.rows import conflict_insert, table, values_of
from pixelgate.db.tables import BlobDeletion, JobInputBlob, StoredFile
from pixelgate.errors import NotFound, StorageError
from pixelgate.providers import GeneratedImage
from pixelgate.service.media import MediaLinks
from pixelgate.storage import BlobNotFound, BlobStore

log = logging.getLogger(__name__)

RECENT_FILES = 1024
FILES = table(StoredFile)
INSERT_FILE = insert(FILES)
SET_EXPIRY = (
    update(FILES).where(FILES.c.id == bindparam("b_id")).values(expires_at=bindparam("b_expires"))
)
DELETIONS = table(BlobDeletion)
SWEEP_BATCH = 500
"""Rows deleted (or rewritten) per transaction by housekeeping and erasure: each transaction
is short, so a request's write waits at most one batch behind it on SQLite's single writer."""


def no_override(tenant_id: str) -> float | None:
    return None


def schedule_deletion_statement(dialect: str) -> Insert:
    """Record a blob to delete when due, or move its due time when it is waiting already."""
    statement = conflict_insert(DELETIONS, dialect)
    return statement.on_conflict_do_update(
        index_elements=[DELETIONS.c.blob_key], set_={"due_at": statement.excluded.due_at}
    )


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
        retention_days_of: Callable[[str], float | None] = no_override,
    ) -> None:
        """`retention`: the global one; `retention_days_of`: a tenant's own, in days, or None
        (read lately: `TenantService.current`)."""
        self._db = db
        self._blobs = blobs
        self._clock = clock
        self.links = links
        self._retention = retention
        self._retention_days_of = retention_days_of
        self._recent: OrderedDict[str, StoredFile] = OrderedDict()
        """The latest records saved by this process, by id, oldest first. A record changes
        by its deletion (`forget`) or a new retention of its tenant (`forget_tenant`)."""
        self._recent_lock = threading.Lock()
        self._schedule_deletion = schedule_deletion_statement(db.engine.dialect.name)

    def store(self, *, tenant_id: str, job_id: str | None, image: GeneratedImage) -> StoredFile:
        record = self.prepare(tenant_id=tenant_id, job_id=job_id, image=image)
        self.save([record])
        return record

    def prepare(self, *, tenant_id: str, job_id: str | None, image: GeneratedImage) -> StoredFile:
        """Store the bytes; return their record, not yet saved: the caller saves it in its own
        transaction (or with `save`). A failed write (a full disk) is a `StorageError`."""
        key = put_blob(self._blobs, image.data, what="the result")
        now = self._clock.now()
        return StoredFile(
            id="file_" + secrets.token_hex(12),
            tenant_id=tenant_id,
            job_id=job_id,
            blob_key=key,
            content_type=image.content_type,
            size_bytes=len(image.data),
            width=image.width,
            height=image.height,
            created_at=now,
            expires_at=now + self.retention_of(tenant_id),
        )

    def retention_of(self, tenant_id: str) -> timedelta:
        """How long the tenant's results are kept: its own retention, else the global one."""
        days = self._retention_days_of(tenant_id)
        return self._retention if days is None else timedelta(days=days)

    def save(self, records: list[StoredFile]) -> None:
        with self._db.connection(writes=True) as connection:
            self.record(connection, records)
        self.saved(records)

    def record(self, connection: Connection, records: list[StoredFile]) -> None:
        """Insert the records in the caller's transaction (call `saved` once it commits)."""
        if records:
            connection.execute(INSERT_FILE, [values_of(record) for record in records])

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
            expires_at=now + self.retention_of(tenant_id),
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

    def sweep_expired(self, *, batch: int = SWEEP_BATCH) -> int:
        """Delete files past retention, `batch` per transaction (the oldest first, by the
        `expires_at` index), and the blobs nothing uses any more. Returns files removed."""
        expired = (
            select(FILES.c.id, FILES.c.blob_key)
            .where(FILES.c.expires_at <= self._clock.now())
            .order_by(FILES.c.expires_at)
        )
        removed, blobs = self.delete_selected(expired, batch=batch)
        if removed:
            log.info("retention removed %d files, %d blobs", removed, blobs)
        return removed

    def delete_selected(self, query: Select[str, str], *, batch: int) -> tuple[int, int]:
        """Delete the files `query` selects (their id and blob key), `batch` per transaction
        until it selects none, and the blobs nothing uses any more. Returns (files, blobs)."""
        removed = blobs = 0
        while True:
            with self._db.session() as session:
                rows = session.execute(query.limit(batch)).all()
                if rows:
                    session.execute(delete(FILES).where(FILES.c.id.in_([r.id for r in rows])))
            self.forget([row.id for row in rows])
            blobs += self.delete_unused_blobs({row.blob_key for row in rows})
            removed += len(rows)
            if len(rows) < batch:
                return removed, blobs

    def delete_unused_blobs(self, keys: Collection[str]) -> int:
        """Delete those of these blobs that no file and no job's inputs use (blobs are
        content-addressed: another tenant's file may hold the same bytes). Each is asked by one
        probe of `ix_files_blob_key` and of `ix_job_input_blobs_blob_key`. Returns how many.

        A file made with the same bytes between this check and the deletion loses them (the
        check and the store are not one transaction); results are rarely byte-identical but
        for cache hits, which copy a record whose blob is in use, and so is kept."""
        keys = set(keys)
        if not keys:
            return 0
        with self._db.session() as session:
            used = set(session.scalars(select(FILES.c.blob_key).where(FILES.c.blob_key.in_(keys))))
            used.update(
                session.scalars(
                    select(JobInputBlob.blob_key).where(JobInputBlob.blob_key.in_(keys))
                )
            )
        for key in keys - used:
            self._blobs.delete(key)
        return len(keys - used)

    def delete_unused_blobs_later(self, keys: Collection[str], *, after: timedelta) -> None:
        """Delete these blobs once `after` has passed, those that nothing uses by then
        (`delete_due_blobs`, a housekeeping step); a blob waiting already waits from now."""
        if not keys:
            return
        due = self._clock.now() + after
        rows = [{"blob_key": key, "due_at": due} for key in sorted(keys)]
        with self._db.connection(writes=True) as connection:
            connection.execute(self._schedule_deletion, rows)

    def delete_due_blobs(self, *, batch: int = SWEEP_BATCH) -> int:
        """Delete the blobs whose deletion is due (`delete_unused_blobs_later`) and that nothing
        uses, `batch` at a time; those in use are kept, and no longer waiting. Returns how many
        blobs were deleted."""
        deleted = 0
        while True:
            now = self._clock.now()
            due = (
                select(DELETIONS.c.blob_key)
                .where(DELETIONS.c.due_at <= now)
                .order_by(DELETIONS.c.due_at)
                .limit(batch)
            )
            with self._db.session() as session:
                keys = list(session.scalars(due))
            if not keys:
                break
            deleted += self.delete_unused_blobs(keys)
            # after the blobs: a process stopped in between leaves the rows, done again later
            with self._db.connection(writes=True) as connection:
                connection.execute(
                    delete(DELETIONS).where(
                        DELETIONS.c.blob_key.in_(keys), DELETIONS.c.due_at <= now
                    )
                )
            if len(keys) < batch:
                break
        if deleted:
            log.info("deleted %d blobs that waited for their deletion", deleted)
        return deleted

    def delete(self, tenant_id: str, file_id: str) -> None:
        """Delete a tenant's file: its record, so its links answer 404 at once, then its
        bytes unless something else (a cache hit's copy, identical bytes, a job's inputs)
        still uses them. Another tenant's file, or an expired one, is not found.

        A cache hit that copies a record over the same blob (`ResultCache.serve`) checks in
        its own transaction that the record it copies still exists, so it is either
        committed before `delete_unused_blobs` looks (and the blob is kept) or not at all."""
        record = self.get(tenant_id, file_id)
        with self._db.session(writes=True) as session:
            deleted = session.execute(
                delete(FILES).where(FILES.c.id == file_id, FILES.c.tenant_id == tenant_id)
            )
            if not deleted.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"No file {file_id!r}", param="file_id")  # deleted meanwhile
        self.forget([file_id])
        self.delete_unused_blobs({record.blob_key})

    def apply_retention(self, tenant_id: str, *, batch: int = SWEEP_BATCH) -> int:
        """A tenant's retention changed: every file of its own expires at its creation plus the
        new retention, so reads and the sweep keep reading `expires_at` alone (one index range),
        never the tenant. Rewritten `batch` per transaction. Returns the files rewritten."""
        retention = self.retention_of(tenant_id)
        query = select(FILES.c.id, FILES.c.created_at).where(FILES.c.tenant_id == tenant_id)
        changed = 0
        with self._db.engine.connect() as reader:  # read apart: no write waits behind it
            result = reader.execution_options(yield_per=batch).execute(query)
            for rows in result.partitions():
                changes = [
                    {"b_id": row.id, "b_expires": as_utc(row.created_at) + retention}
                    for row in rows
                ]
                with self._db.session(writes=True) as session:
                    session.execute(SET_EXPIRY, changes)
                changed += len(changes)
        self.forget_tenant(tenant_id)
        return changed

    def forget(self, file_ids: Collection[str]) -> None:
        """Records deleted: no longer handed back from memory."""
        with self._recent_lock:
            for file_id in file_ids:
                self._recent.pop(file_id, None)

    def forget_tenant(self, tenant_id: str) -> None:
        with self._recent_lock:
            for file_id in [k for k, r in self._recent.items() if r.tenant_id == tenant_id]:
                del self._recent[file_id]

    def _expired(self, record: StoredFile) -> bool:
        return record.expires_at is not None and as_utc(record.expires_at) <= self._clock.now()
