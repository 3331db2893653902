"""Erasing a tenant: everything it made or sent goes, but the money it spent stays accounted.

Removed: every job and job event (with its webhook deliveries), every file (record and blob),
every input image its jobs used, its idempotency keys, its API keys, its own provider keys, its
webhook signing secret, its ledger entries (they name its jobs) and its usage by day. A blob goes
only when no remaining file or job input uses it: blobs are content-addressed, so another
tenant's file (a shared cache hit, the same upload) may hold the same bytes. The inputs of its
requests that were refused are not among them: they name no tenant, and housekeeping deletes
them when they are due (`InputImages.kept_if_accepted`).

Kept, because an operator must be able to account for money taken: the tenant's budget
accounts (`budget_accounts`: what it spent in total and in each month, nothing reserved), and
its `tenants` row as a tombstone (`erased_at` set; name, model lists, prices, limits and
retention cleared), which those accounts belong to and which keeps the id from being given to
another customer. Neither holds a prompt, an image, a job id or a key.

A tenant with jobs queued or running is refused (409): its worker would store results after the
erasure. Cancel them (or wait for them to end) and erase again. The default tenant, which holds
the operators' keys, is never erased."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import (
    ApiKey,
    Batch,
    BatchItem,
    BudgetAccount,
    IdempotencyKey,
    Job,
    LedgerEntry,
    StoredFile,
    Tenant,
    TenantProviderKey,
    UsageDaily,
    WebhookSecret,
)
from pixelgate.errors import Conflict, NotFound
from pixelgate.service.access import AccessService
from pixelgate.service.files import SWEEP_BATCH, FileService
from pixelgate.service.job_store import ACTIVE
from pixelgate.service.retention import delete_selected_jobs
from pixelgate.service.tenants import TenantService

DEFAULT_TENANT = "default"
KEPT = (
    "budget_accounts: the money spent in total and in each month, for the operator's books",
    "the tenant's row as a tombstone (erased_at), which those accounts belong to; its id is "
    "never given to another tenant",
)


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed."""

    tenant_id: str
    jobs: int
    files: int
    blobs: int
    api_keys: int


class TenantEraser:
    def __init__(
        self,
        db: Database,
        files: FileService,
        tenants: TenantService,
        access: AccessService,
        clock: Clock,
    ) -> None:
        self._db = db
        self._files = files
        self._tenants = tenants
        self._access = access
        self._clock = clock

    def erase(self, tenant_id: str, *, batch: int = SWEEP_BATCH) -> Erasure:
        """Erase the tenant (see the module's doc), `batch` rows per transaction."""
        if tenant_id == DEFAULT_TENANT:
            raise Conflict("The default tenant holds the operators' keys", param="tenant_id")
        with self._db.session() as session:
            api_keys = self._close(session, tenant_id)
        self._access.forget_recent_keys()
        self._tenants.forget(tenant_id)
        jobs, files, blobs = self._delete_jobs(tenant_id, batch)
        more_files, more_blobs = self._delete_files(tenant_id, batch)
        self._delete_accounting(tenant_id, batch)
        return Erasure(tenant_id, jobs, files + more_files, blobs + more_blobs, api_keys)

    def _close(self, session: Session, tenant_id: str) -> int:
        """Refuse a tenant with work in flight; else make its row a tombstone and delete its
        keys, so nothing new arrives. Returns the keys deleted."""
        tenant = session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise NotFound(f"No tenant {tenant_id!r}", param="tenant_id")
        active = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE))
        )
        if active:
            raise Conflict(
                f"Tenant {tenant_id!r} has {active} queued or running jobs; cancel them or let "
                "them end, then erase it",
                param="tenant_id",
            )
        tenant.name = tenant_id
        tenant.allow_models = []  # nothing, should a key ever reach it again
        tenant.deny_models = tenant.prices = tenant.limits = None
        tenant.budget_total = tenant.budget_monthly = None
        tenant.safety_threshold = tenant.retention_days = None
        tenant.erased_at = tenant.erased_at or self._clock.now()
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id))
        session.execute(delete(WebhookSecret).where(WebhookSecret.tenant_id == tenant_id))
        # batches hold the tenant's prompts; their items not yet submitted go with them
        batches = select(Batch.id).where(Batch.tenant_id == tenant_id)
        session.execute(delete(BatchItem).where(BatchItem.batch_id.in_(batches)))
        session.execute(delete(Batch).where(Batch.tenant_id == tenant_id))
        session.execute(delete(TenantProviderKey).where(TenantProviderKey.tenant_id == tenant_id))
        deleted = session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant_id))
        return int(deleted.rowcount)  # type: ignore[attr-defined]

    def _delete_jobs(self, tenant_id: str, batch: int) -> tuple[int, int, int]:
        """Every job of the tenant, with its events, files, inputs and ledger entries."""

        def delete_entries(session: Session, ids: list[str]) -> None:
            session.execute(delete(LedgerEntry).where(LedgerEntry.job_id.in_(ids)))

        query = select(Job.id).where(Job.tenant_id == tenant_id)
        return delete_selected_jobs(self._db, self._files, query, batch=batch, also=delete_entries)

    def _delete_files(self, tenant_id: str, batch: int) -> tuple[int, int]:
        """Files of the tenant no job of its own made (none today; any that appear)."""
        query = select(StoredFile.id, StoredFile.blob_key).where(StoredFile.tenant_id == tenant_id)
        return self._files.delete_selected(query, batch=batch)

    def _delete_accounting(self, tenant_id: str, batch: int) -> None:
        """The ledger's entries and the usage by day go; the budget accounts stay, with
        nothing reserved (no job of the tenant is left to settle)."""
        entries = select(LedgerEntry.id).where(LedgerEntry.tenant_id == tenant_id).limit(batch)
        while True:
            with self._db.session() as session:
                ids = list(session.scalars(entries))
                if ids:
                    session.execute(delete(LedgerEntry).where(LedgerEntry.id.in_(ids)))
            if len(ids) < batch:
                break
        with self._db.session() as session:
            session.execute(delete(UsageDaily).where(UsageDaily.tenant_id == tenant_id))
            session.execute(
                update(BudgetAccount).where(BudgetAccount.tenant_id == tenant_id).values(reserved=0)
            )
