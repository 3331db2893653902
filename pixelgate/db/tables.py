"""Database tables. These are records; the rules that change them live in `service/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pixelgate.catalog.spec import TaskKind
from pixelgate.db.job_records import JobInputs, JobOptions, JobResult, JobRoute, RecordJSON


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    allow_models: Mapped[list[Any] | None] = mapped_column(JSON)
    """Model ids or glob patterns this tenant may use; None allows every model."""
    deny_models: Mapped[list[Any] | None] = mapped_column(JSON)
    prices: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Price overrides: {model id: {price key: decimal string}}."""
    budget_total: Mapped[int | None] = mapped_column(BigInteger)
    """In micro-units of the currency (1 = 0.000001); None is no limit."""
    budget_monthly: Mapped[int | None] = mapped_column(BigInteger)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """requests_per_minute, images_per_day, concurrent_jobs; unset ones use the defaults."""
    cache_policy: Mapped[str] = mapped_column(String(16), default="free")
    safety_threshold: Mapped[float | None] = mapped_column(Float)
    """NSFW score above which this tenant's images are withheld; None uses the global one."""
    retention_days: Mapped[float | None] = mapped_column(Float)
    """How long this tenant's results and jobs are kept; None uses `retention_days` of the
    settings."""
    own_keys_only: Mapped[bool] = mapped_column(Boolean, default=False)
    """The tenant may use only the models it runs with its own provider keys."""
    own_keys_billing: Mapped[str] = mapped_column(String(16), default="free")
    """`free`: a job run with the tenant's own provider key costs it nothing here (its
    provider bills it); `charge`: it pays the price of the model as any job does."""
    erased_at: Mapped[datetime | None]
    """Set when the tenant was erased (`service.erasure`): the row stays as a tombstone, with
    its budget accounts, so the id is never reused and the money it spent stays accounted."""


class TenantProviderKey(Base):
    """A tenant's own API key for a hosted provider, encrypted (`service.provider_keys`)."""

    __tablename__ = "tenant_provider_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    """A Fernet token of the key; the key itself is stored nowhere."""
    last4: Mapped[str] = mapped_column(String(4))
    """The key's last 4 characters, to recognise it."""
    updated_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]]
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(16), default="api")
    """`api` (created through the API or CLI), `bootstrap` or `env` (PIXELGATE_ADMIN_KEY)."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        # a tenant's jobs, newest first (`GET /v1/jobs`), read in index order: no sort; the id
        # last orders jobs created at the same time, so cursor pages never skip or repeat one
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        # the same in one state (`GET /v1/jobs?status=`), and a tenant's active jobs counted
        # against its concurrency limit
        Index("ix_jobs_tenant_status_created", "tenant_id", "status", "created_at", "id"),
        # the same of one model (`GET /v1/jobs?model=`)
        Index("ix_jobs_tenant_model_created", "tenant_id", "model", "created_at", "id"),
        # the result cache (`ResultCache.lookup`, `.in_flight`): one probe to the computed jobs
        # of a key in one state, newest finished first; the tenant, last, is read in the index
        # when hits stay within a tenant, and skipped when they are shared
        Index("ix_jobs_cache_lookup", "cache_key", "cached", "status", "finished_at", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    api_key_id: Mapped[str | None] = mapped_column(String(64))
    task: Mapped[TaskKind] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    options: Mapped[JobOptions] = mapped_column(RecordJSON(JobOptions))
    """The validated options, seed included, so a resumed job makes the same images."""
    prompt: Mapped[str | None] = mapped_column(Text)
    """The options' prompt, where the search of `GET /v1/jobs?q=` reads it."""
    inputs: Mapped[JobInputs | None] = mapped_column(RecordJSON(JobInputs))
    """Input images by role (`image`, `mask`): blob key, content type, size."""
    response_format: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    result: Mapped[JobResult | None] = mapped_column(RecordJSON(JobResult))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_param: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    """The worker running the job; only it may finish the job while it holds the lease."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    """A running job's worker renews this; past it, the job is taken back and queued again."""
    enqueued_at: Mapped[datetime | None]
    """When the job was last handed to the queue; a queued job not taken is handed again."""
    cache_key: Mapped[str | None] = mapped_column(String(64))
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    """This job's result was served from the cache."""
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the job's settlement charged, in micro-units of the currency: 0 until it settles,
    and for a job that pays nothing (a free model, a failure, a free cache hit). Written with
    the settlement, by the update that ends the job (`Billing.on_job_ending`), so reading a
    job's cost is reading its row."""
    route: Mapped[JobRoute | None] = mapped_column(RecordJSON(JobRoute))
    """The fallbacks of a request that named them (or of its model's default route): the model
    asked for, the models left to try and every try; None for a job with no fallback."""
    cache_bypassed: Mapped[bool] = mapped_column(Boolean, default=False)
    """The request skipped the result cache (`"cache": false`): the job computes its images,
    neither served from the cache nor waiting for an identical job in flight. Its result still
    serves later requests."""
    own_key: Mapped[bool] = mapped_column(Boolean, default=False)
    """The job runs with its tenant's own key for its provider, as decided when it was accepted
    (and billed so); never the operator's instead."""
    has_webhook: Mapped[bool] = mapped_column(Boolean, default=False)
    """Its request named a webhook (`JobWebhook`), recorded with the job: the webhook outbox
    looks for a webhook only on the events and progress of a job that has one."""
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEvent(Base):
    """A job's state changes, in order; the SSE stream replays them before going live."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class StoredFile(Base):
    __tablename__ = "files"
    __table_args__ = (
        # a tenant's files, newest first (`GET /v1/files`), in index order: no sort
        Index("ix_files_tenant_created", "tenant_id", "created_at", "id"),
        # a job's files (`GET /v1/files?job_id=`, a job's deletion), in the same order
        Index("ix_files_job_created", "job_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    blob_key: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class BudgetAccount(Base):
    """What a tenant has spent and holds reserved, in one period: `total` or `YYYY-MM`."""

    __tablename__ = "budget_accounts"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerEntry(Base):
    """Every movement of money: a job reserves its maximum, then settles what it made and
    refunds the rest."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    images: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]


class JobInputBlob(Base):
    """A blob a job's inputs use (`jobs.inputs`), so that deleting a blob can ask, by one index
    probe, whether any job still needs it."""

    __tablename__ = "job_input_blobs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class BlobDeletion(Base):
    """A blob to delete once `due_at` has passed, if nothing uses it by then: the inputs of a
    refused request (`InputImages.kept_if_accepted`). Not deleted at once, because another
    replica's request may have stored the same bytes and not yet recorded its job."""

    __tablename__ = "blob_deletions"

    blob_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(index=True)


class UsageDaily(Base):
    """What a tenant spent and made with one model on one UTC day: the ledger's settlements
    summed as they are written (`Billing.finish`), so usage reports read this, not the ledger."""

    __tablename__ = "usage_daily"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    """`YYYY-MM-DD`, UTC."""
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
    """Jobs settled: each job that reserved money, once, whatever it made."""


class Batch(Base):
    """Up to 100 generate requests sent together; each runs as an ordinary job."""

    __tablename__ = "batches"
    __table_args__ = (
        # a tenant's batches, newest first (`GET /v1/batches`), in index order
        Index("ix_batches_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    api_key_id: Mapped[str] = mapped_column(String(64))
    """The key that sent it: its items are submitted as that key's requests."""
    item_count: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime]
    canceled_at: Mapped[datetime | None]


class BatchItem(Base):
    """One request of a batch: waiting to be submitted (`pending`), then its job's; or never
    submitted (`refused` with the error that refused it, or `canceled`)."""

    __tablename__ = "batch_items"
    __table_args__ = (
        # the dispatcher's probe: pending items whose wait is over, oldest batch first
        Index("ix_batch_items_state_not_before", "state", "not_before"),
    )

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    request: Mapped[dict[str, Any]]
    """The generate request, checked when the batch was accepted: model, options (the prompt
    among them), response format, metadata, whether to use the cache."""
    state: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_param: Mapped[str | None] = mapped_column(String(200))
    not_before: Mapped[datetime | None]
    """A rate or concurrency limit said to wait until then."""
    claimed_until: Mapped[datetime | None]
    """A dispatcher is submitting it; another may take it over after this time."""


class WorkerRecord(Base):
    """A worker process and its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    models: Mapped[list[Any]]
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    running: Mapped[list[Any]]
    """Ids of the jobs it runs now."""


class WebhookSecret(Base):
    """A tenant's webhook signing secret (`whsec_...`), made on first read, kept encrypted
    (Fernet, by the vault of tenants' provider keys). After a rotation the previous one still
    signs beside it for a while (`service.webhook_secrets`)."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    previous_ciphertext: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class JobWebhook(Base):
    """Where a job's events go, as its request asked (`webhook`, `webhook_events`)."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    """The job's tenant, whose secret signs the deliveries."""
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]]
    base_url: Mapped[str] = mapped_column(Text)
    """Where the links in its deliveries point (the public URL, or the request's own)."""


class WebhookDelivery(Base):
    """One event of a job to POST to its webhook: the outbox. Sent in order per job (`seq`),
    tried until a 2xx answer or the retry window closes, under the same `id` every time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # the sender's probe: pending deliveries whose time has come
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
        # a job's deliveries in order (the ordering check, `GET /v1/jobs/{id}/webhooks`)
        Index("ix_webhook_deliveries_job_seq", "job_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(64), unique=True)
    """The `webhook-id` header: `msg_...`, the same on every try."""
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]]
    """The event's own details (a progress step, a reason)."""
    state: Mapped[str] = mapped_column(String(16))
    """`pending`, `delivered` or `failed` (given up)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    """A sender is trying it; another may take it over after this time."""
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One try of a delivery: when, what came back (a status code or an error), how long."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_seq: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.seq", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)
