"""Retention of jobs: a job past its tenant's retention is deleted with everything that hangs
off it (its events, its files and their blobs, its input images, its idempotency keys).

A job's images are gone after retention; its row keeps the prompt, options and metadata the
caller sent, which are the caller's data, so it goes too. The ledger stays: its entries hold
amounts, counts, the model and the job's id, and are what money is accounted by (an erased
tenant's go, see `service.erasure`).

A job's webhook and its deliveries (with their tries) go with it (the database cascades them).
A batch goes once it is past its tenant's retention too and none of its items is pending or has
a job left: its requests hold the tenant's prompts.

A job is past retention when it ended and was created longer ago than its tenant's retention
(`tenants.retention_days`, else the global one), read at each sweep: one range of
`ix_jobs_tenant_created` per tenant, so a changed retention applies to old jobs with nothing
rewritten. Its files are created just after it, and expire with it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, exists, or_, select
from sqlalchemy.orm import Session

from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import (
    Batch,
    BatchItem,
    IdempotencyKey,
    Job,
    JobEvent,
    JobInputBlob,
    StoredFile,
    Tenant,
)
from pixelgate.service.batches import PENDING
from pixelgate.service.files import SWEEP_BATCH, FileService
from pixelgate.service.job_store import JobStatus

log = logging.getLogger(__name__)

ENDED = [status.value for status in JobStatus if status.is_terminal]


def delete_jobs(session: Session, job_ids: Collection[str]) -> tuple[list[str], set[str]]:
    """Delete these jobs, their events, files, input references and idempotency keys, each by
    an index on the job's id. Returns the ids of the files deleted and the blobs they and the
    inputs used (to delete once nothing else uses them: `FileService.delete_unused_blobs`)."""
    ids = list(job_ids)
    if not ids:
        return [], set()
    files = session.execute(
        select(StoredFile.id, StoredFile.blob_key).where(StoredFile.job_id.in_(ids))
    ).all()
    keys = {row.blob_key for row in files}
    keys.update(session.scalars(select(JobInputBlob.blob_key).where(JobInputBlob.job_id.in_(ids))))
    session.execute(delete(JobEvent).where(JobEvent.job_id.in_(ids)))
    session.execute(delete(JobInputBlob).where(JobInputBlob.job_id.in_(ids)))
    session.execute(delete(StoredFile).where(StoredFile.job_id.in_(ids)))
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.job_id.in_(ids)))
    session.execute(delete(Job).where(Job.id.in_(ids)))
    return [row.id for row in files], keys


def delete_selected_jobs(
    db: Database,
    files: FileService,
    query: Select[str],
    *,
    batch: int = SWEEP_BATCH,
    also: Callable[[Session, list[str]], object] | None = None,
) -> tuple[int, int, int]:
    """Delete the jobs `query` selects (their ids), `batch` per transaction until it selects
    none, as `delete_jobs` does, then the blobs nothing uses any more; `also(session, ids)`
    deletes more in the same transaction. Returns (jobs, files, blobs)."""
    jobs = deleted_files = blobs = 0
    while True:
        with db.session() as session:
            ids = list(session.scalars(query.limit(batch)))
            file_ids, keys = delete_jobs(session, ids)
            if ids and also is not None:
                also(session, ids)
        files.forget(file_ids)
        blobs += files.delete_unused_blobs(keys)
        jobs += len(ids)
        deleted_files += len(file_ids)
        if len(ids) < batch:
            return jobs, deleted_files, blobs


class Retention:
    """Housekeeping's retention step: files past `expires_at`, then jobs past retention, then
    the blobs whose deletion is due (a refused request's inputs)."""

    def __init__(
        self, db: Database, files: FileService, clock: Clock, *, retention: timedelta
    ) -> None:
        self._db = db
        self._files = files
        self._clock = clock
        self._retention = retention

    def sweep(self, *, batch: int = SWEEP_BATCH) -> tuple[int, int]:
        """Delete expired files and jobs, `batch` per transaction, and the blobs whose deletion
        is due (`FileService.delete_due_blobs`). Returns (files, jobs)."""
        files = self._files.sweep_expired(batch=batch)
        jobs = self.sweep_jobs(batch=batch)
        self._files.delete_due_blobs(batch=batch)
        return files, jobs

    def sweep_jobs(self, *, batch: int = SWEEP_BATCH) -> int:
        with self._db.session() as session:
            tenants = session.execute(select(Tenant.id, Tenant.retention_days)).all()
        removed = 0
        for tenant_id, days in tenants:
            retention = self._retention if days is None else timedelta(days=days)
            removed += self._sweep_tenant(tenant_id, self._clock.now() - retention, batch)
        if removed:
            log.info("retention removed %d jobs", removed)
        return removed

    def _sweep_tenant(self, tenant_id: str, cutoff: datetime, batch: int) -> int:
        query = (
            select(Job.id)
            .where(Job.tenant_id == tenant_id, Job.created_at < cutoff, Job.status.in_(ENDED))
            .order_by(Job.created_at)
        )
        removed, _, _ = delete_selected_jobs(self._db, self._files, query, batch=batch)
        self._sweep_batches(tenant_id, cutoff, batch)
        return removed

    def _sweep_batches(self, tenant_id: str, cutoff: datetime, batch: int) -> int:
        """The tenant's batches created before `cutoff` with no item pending or still holding
        a job (theirs went with retention, or were deleted); returns how many went."""
        busy_item = (
            exists()
            .where(BatchItem.batch_id == Batch.id)
            .where(or_(BatchItem.state == PENDING, exists().where(Job.id == BatchItem.job_id)))
        )
        query = (
            select(Batch.id)
            .where(Batch.tenant_id == tenant_id, Batch.created_at < cutoff, ~busy_item)
            .order_by(Batch.created_at)
            .limit(batch)
        )
        removed = 0
        while True:
            with self._db.session() as session:
                ids = list(session.scalars(query))
                if ids:
                    session.execute(delete(BatchItem).where(BatchItem.batch_id.in_(ids)))
                    session.execute(delete(Batch).where(Batch.id.in_(ids)))
            removed += len(ids)
            if len(ids) < batch:
                return removed
