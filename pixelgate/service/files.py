"""Stored results: a record per file, bytes in the blob store, retention, and links."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.tables import StoredFile
from pixelgate.errors import NotFound
from pixelgate.providers import GeneratedImage
from pixelgate.service.media import MediaLinks
from pixelgate.storage import BlobNotFound, BlobStore

log = logging.getLogger(__name__)


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

    def store(self, *, tenant_id: str, job_id: str | None, image: GeneratedImage) -> StoredFile:
        key = self._blobs.put(image.data)
        now = self._clock.now()
        record = StoredFile(
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
        with self._db.session() as session:
            session.add(record)
        return record

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

    def get_many(self, tenant_id: str, file_ids: list[str]) -> dict[str, StoredFile]:
        with self._db.session() as session:
            records = session.scalars(
                select(StoredFile).where(
                    StoredFile.id.in_(file_ids), StoredFile.tenant_id == tenant_id
                )
            ).all()
        return {record.id: record for record in records if not self._expired(record)}

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
            keys = {record.blob_key for record in expired}
            session.execute(delete(StoredFile).where(StoredFile.expires_at <= now))
            still_used = set(
                session.scalars(select(StoredFile.blob_key).where(StoredFile.blob_key.in_(keys)))
            )
        for key in keys - still_used:
            self._blobs.delete(key)
        if expired:
            log.info("retention removed %d files, %d blobs", len(expired), len(keys - still_used))
        return len(expired)

    def _expired(self, record: StoredFile) -> bool:
        return record.expires_at is not None and as_utc(record.expires_at) <= self._clock.now()
