"""The result cache: a request with an explicit seed and the same model, prompt, options and
input images gets the stored result at once. Hits are per tenant unless the operator shares
them.

Identical requests that arrive together are merged in flight, so that one computes and the rest
are served from the cache:

- a caller who waits for its result (a synchronous request) and finds the same request queued
  or running waits for that job before it has one of its own (see `JobService._submit`);
  `InFlight` makes identical requests of one process look and record one after the other, so
  that they see each other's jobs;
- a job of its own (an asynchronous request) is merged when it runs: before it computes, it
  waits for an older identical job in flight (see `JobExecutor._identical_result`).

Either way the hit becomes a job of the caller's own over the stored images, billed under the
tenant's cache policy, in one place: `ResultCache.serve`."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.job_records import JobInputs, JobResult
from pixelgate.db.rows import from_row, table
from pixelgate.db.tables import Job, StoredFile, Tenant
from pixelgate.errors import Conflict
from pixelgate.service.billing import Billing
from pixelgate.service.files import FileService
from pixelgate.service.job_store import JobStatus

IN_FLIGHT = (JobStatus.QUEUED, JobStatus.RUNNING)

FOLLOW_FIRST_PAUSE = 0.02
FOLLOW_MAX_PAUSE = 0.5
"""How often a request that waits for an identical one in flight looks at it again."""

TENANTS = table(Tenant)
TENANT_BY_ID = select(TENANTS).where(TENANTS.c.id == bindparam("b_id"))


def follow_pauses() -> Iterator[float]:
    """The pauses between looks at a job in flight that a request waits for: short at first,
    for the job that is about to end, then doubling up to `FOLLOW_MAX_PAUSE`."""
    pause = FOLLOW_FIRST_PAUSE
    while True:
        yield pause
        pause = min(pause * 2, FOLLOW_MAX_PAUSE)


def cache_key(*, task: str, model: str, options: dict[str, Any], inputs: JobInputs) -> str:
    """A digest of what determines the pixels. Inputs count by their content (blob key)."""
    canonical = json.dumps(
        {
            "task": task,
            "model": model,
            "options": options,
            "inputs": {role: stored.blob_key for role, stored in inputs.images.items()},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ServedHit:
    """An earlier job's images as a job of the caller's own (`ResultCache.serve`)."""

    result: JobResult
    """The job's result: the earlier job's, pointing at the job's own file records over the
    same stored bytes."""
    record: Callable[[Connection], int]
    """To run in the transaction that records the job's success: records those files and bills
    the hit under the tenant's cache policy; returns what the hit cost (micros)."""


class ResultCache:
    def __init__(
        self, db: Database, files: FileService, billing: Billing, clock: Clock, *, shared: bool
    ) -> None:
        self._db = db
        self._files = files
        self._billing = billing
        self._clock = clock
        self.shared = shared

    def lookup(self, tenant_id: str, key: str) -> Job | None:
        """The newest succeeded job with this key whose images are all still stored, among
        the jobs that computed their images: a hit's own job (`cached`) holds copies of the
        same images, so it is never looked at, and hits do not add to what a lookup reads.
        One probe of `ix_jobs_cache_lookup`, in its order."""
        query = (
            select(Job)
            .where(Job.cache_key == key, Job.cached.is_(False), Job.status == "succeeded")
            .order_by(Job.finished_at.desc())
            .limit(5)
        )
        if not self.shared:
            query = query.where(Job.tenant_id == tenant_id)
        with self._db.session() as session:
            candidates = list(session.scalars(query))
        for job in candidates:
            file_ids = job.result.file_ids if job.result is not None else []
            # from the database: a file deleted by another process is not served
            found = self._files.get_many(job.tenant_id, file_ids, fresh=True)
            if file_ids and len(found) == len(file_ids):
                return job
        return None

    def scope(self, tenant_id: str, key: str) -> str:
        """The name under which hits for this key are shared: the tenant's, or everyone's."""
        return key if self.shared else f"{tenant_id}/{key}"

    def in_flight(self, tenant_id: str, key: str, *, before: Job | None = None) -> Job | None:
        """The oldest job with this key that is queued or running (not being canceled): the
        one an identical request may wait for. With `before`, only a job older than that one
        (created earlier; the id decides a tie): a job waits only for older ones, so no two
        jobs ever wait for each other.

        The jobs in flight with one key are few (identical requests wait for the oldest), so
        they are all read, by one probe of `ix_jobs_cache_lookup`, and the oldest picked here:
        the database sorts nothing."""
        query = select(Job).where(
            Job.cache_key == key,
            Job.cached.is_(False),
            Job.status.in_(IN_FLIGHT),
            Job.cancel_requested.is_(False),
        )
        if not self.shared:
            query = query.where(Job.tenant_id == tenant_id)
        if before is not None:
            query = query.where(
                or_(
                    Job.created_at < before.created_at,
                    and_(Job.created_at == before.created_at, Job.id < before.id),
                )
            )
        with self._db.session() as session:
            flying = list(session.scalars(query))
        return min(flying, key=lambda job: (as_utc(job.created_at), job.id), default=None)

    def serve(self, hit: Job, *, tenant_id: str, job_id: str, price: int | None) -> ServedHit:
        """The images of `hit` (a `lookup`) as the result of the tenant's job `job_id`, and how
        to record them and bill it: a tenant whose cache policy is "charge" pays for the
        images, one whose policy is "free" nothing.

        `price`: the price of one image, for a job made as a hit, which reserved nothing (a
        request served as it is accepted); None for a job that reserved its price when it was
        accepted (one served when it runs), whose reservation is then settled in full or
        refunded in full."""
        images = hit.result.images if hit.result is not None else ()
        sources = [image.file_id for image in images]
        records = self._files.get_many(hit.tenant_id, sources)
        if len(records) < len(sources):
            raise _gone()
        copies = [
            self._files.duplicate(records[source], tenant_id=tenant_id, job_id=job_id)
            for source in sources
        ]
        result = JobResult(
            created=int(self._clock.now().timestamp()),
            images=tuple(
                replace(image, file_id=copy.id) for image, copy in zip(images, copies, strict=True)
            ),
        )

        def record(connection: Connection) -> int:
            # the images copied must still exist as this commits: a deletion of one (which
            # deletes its blob once no file uses it) is then either committed before, and
            # this fails, or waits for this (the rows are locked for share on PostgreSQL;
            # SQLite runs one writer at a time) and sees the copies
            kept = connection.scalars(
                select(StoredFile.id).where(StoredFile.id.in_(sources)).with_for_update(read=True)
            ).all()
            if len(set(kept)) < len(set(sources)):
                raise _gone()
            self._files.record(connection, copies)
            row = connection.execute(TENANT_BY_ID, {"b_id": tenant_id}).first()
            tenant = None if row is None else from_row(Tenant, row)
            charged = tenant is not None and tenant.cache_policy == "charge"
            images = len(copies)
            if price is None:
                return self._billing.finish(connection, job_id, produced=images if charged else 0)
            if charged and price * images > 0:
                assert tenant is not None
                return self._billing.charge(
                    connection, tenant=tenant, job_id=job_id, model=hit.model,
                    amount=price * images, images=images,
                )  # fmt: skip
            return 0

        return ServedHit(result, record)


def _gone() -> Conflict:
    return Conflict("The stored result this request matched was deleted meanwhile; send it again")


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
