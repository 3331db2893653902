"""The result cache: a request with an explicit seed and the same model, prompt, options and
input images gets the stored result at once. Hits are per tenant unless the operator shares
them.

Identical requests that arrive together are merged in flight: a caller who waits for its
result and finds the same request queued or running waits for that job and is then served
from the cache (see `JobService._submit`); `InFlight` makes identical requests of one process
look and record one after the other, so that they see each other's jobs."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from pixelgate.db import Database
from pixelgate.db.tables import Job
from pixelgate.service.files import FileService
from pixelgate.service.job_store import JobStatus

IN_FLIGHT = (JobStatus.QUEUED, JobStatus.RUNNING)


def cache_key(*, task: str, model: str, options: dict[str, Any], inputs: dict[str, Any]) -> str:
    """A digest of what determines the pixels. Inputs count by their content (blob key)."""
    canonical = json.dumps(
        {
            "task": task,
            "model": model,
            "options": options,
            "inputs": {
                role: stored["blob_key"]
                for role, stored in inputs.items()
                if isinstance(stored, dict) and "blob_key" in stored
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResultCache:
    def __init__(self, db: Database, files: FileService, *, shared: bool) -> None:
        self._db = db
        self._files = files
        self.shared = shared

    def lookup(self, tenant_id: str, key: str) -> Job | None:
        """The newest succeeded job with this key whose images are all still stored."""
        query = (
            select(Job)
            .where(Job.cache_key == key, Job.status == "succeeded")
            .order_by(Job.finished_at.desc())
            .limit(5)
        )
        if not self.shared:
            query = query.where(Job.tenant_id == tenant_id)
        with self._db.session() as session:
            candidates = list(session.scalars(query))
        for job in candidates:
            file_ids = [item["file_id"] for item in (job.result or {}).get("images", [])]
            if file_ids and len(self._files.get_many(job.tenant_id, file_ids)) == len(file_ids):
                return job
        return None

    def scope(self, tenant_id: str, key: str) -> str:
        """The name under which hits for this key are shared: the tenant's, or everyone's."""
        return key if self.shared else f"{tenant_id}/{key}"

    def in_flight(self, tenant_id: str, key: str) -> Job | None:
        """The oldest job with this key that is queued or running (not being canceled): the
        one an identical request may wait for."""
        query = (
            select(Job)
            .where(
                Job.cache_key == key,
                Job.status.in_(IN_FLIGHT),
                Job.cached.is_(False),
                Job.cancel_requested.is_(False),
            )
            .order_by(Job.created_at)
            .limit(1)
        )
        if not self.shared:
            query = query.where(Job.tenant_id == tenant_id)
        with self._db.session() as session:
            return session.scalars(query).first()


class _Turn:
    """A lock that a weak dictionary can hold (a plain lock cannot be weakly referenced)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


class InFlight:
    """One lock per cache scope, alive while someone holds or waits for it."""

    def __init__(self) -> None:
        self._turns: weakref.WeakValueDictionary[str, _Turn] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()

    @contextmanager
    def one_at_a_time(self, scope: str) -> Iterator[None]:
        with self._guard:
            turn = self._turns.get(scope)
            if turn is None:
                turn = self._turns[scope] = _Turn()
        with turn.lock:  # `turn` is held here, so the dictionary keeps it meanwhile
            yield
