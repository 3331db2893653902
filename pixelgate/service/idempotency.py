"""Idempotency keys: the same key and request return the same job, never a second charge."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert

from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import IdempotencyKey
from pixelgate.errors import Conflict, ValidationError
from pixelgate.service.inputs import ImageUpload

if TYPE_CHECKING:
    from pixelgate.service.jobs import ImageCommand

MAX_KEY_LENGTH = 255
INSERT_KEY = insert(IdempotencyKey)


def request_fingerprint(command: ImageCommand) -> str:
    """A digest of everything a request asked for, input images by their digests."""
    fields: dict[str, Any] = {
        "task": command.task,
        "model": command.model,
        "options": command.options,
        "response_format": command.response_format,
        "metadata": command.metadata,
        "use_cache": command.use_cache,
        "image": upload_digest(command.image),
        "mask": upload_digest(command.mask),
    }
    if command.webhook is not None:  # only then: earlier fingerprints stay as they were
        fields["webhook"] = [command.webhook.url, list(command.webhook.events)]
    canonical = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def upload_digest(upload: ImageUpload | None) -> str | None:
    if upload is None:
        return None
    if upload.data is not None:
        return "sha256:" + hashlib.sha256(upload.data).hexdigest()
    return f"file:{upload.file_id}"


class IdempotencyKeys:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def replay(self, tenant_id: str, key: str, fingerprint: str) -> str | None:
        """The job an earlier request with this key made, or None for a new key."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValidationError(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
                param="Idempotency-Key",
            )
        with self._db.session() as session:
            record = session.get(IdempotencyKey, (tenant_id, key))
        if record is None:
            return None
        if record.request_hash != fingerprint:
            raise Conflict(
                "This Idempotency-Key was used with a different request", param="Idempotency-Key"
            )
        return record.job_id

    def record(
        self, connection: Connection, *, tenant_id: str, key: str, fingerprint: str, job_id: str
    ) -> None:
        """Within the job's own transaction: a concurrent duplicate fails the whole insert."""
        connection.execute(
            INSERT_KEY,
            {
                "tenant_id": tenant_id,
                "key": key,
                "request_hash": fingerprint,
                "job_id": job_id,
                "created_at": self._clock.now(),
            },
        )
