"""Domain records to protocol bodies. Links become absolute here, where the base URL is known."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pixelgate.api.admin_protocol import (
    BudgetPublic,
    ErasurePublic,
    KeyPublic,
    Limits,
    ProviderKeyPublic,
    TenantPublic,
    UsageBucket,
    UsagePublic,
    WorkerPublic,
)
from pixelgate.api.batch_protocol import BatchCounts, BatchItemPublic, BatchPublic
from pixelgate.api.protocol import (
    Adjustment,
    CostPublic,
    ErrorBody,
    FilePublic,
    GenerateResult,
    ImageData,
    JobPublic,
    ModelPublic,
    RouteTryPublic,
)
from pixelgate.api.webhook_protocol import WebhookAttemptPublic, WebhookDeliveryPublic
from pixelgate.catalog import ModelSpec
from pixelgate.catalog.titles import options_schema
from pixelgate.clock import as_utc
from pixelgate.db.tables import ApiKey, Job, Tenant, WorkerRecord
from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal
from pixelgate.service.batches import BatchView
from pixelgate.service.billing import BudgetStatus, UsageReport, format_money, job_cost
from pixelgate.service.erasure import KEPT, Erasure
from pixelgate.service.history import FileEntry
from pixelgate.service.webhook_outbox import PENDING, DeliveryRecord


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


PublicItem = TypeVar("PublicItem", bound=_HasId)


def generate_result(runtime: Runtime, job: Job, base_url: str) -> GenerateResult:
    images = [
        ImageData(
            url=base_url + output.media_path if output.media_path else None,
            b64_json=output.b64_json,
            revised_prompt=output.revised_prompt,
            seed=output.seed,
            file_id=output.file_id,
            expires_at=output.expires_at,
        )
        for output in runtime.jobs.outputs(job)
    ]
    adjustments = [
        Adjustment.model_validate(item, from_attributes=True)
        for item in (job.inputs.adjustments if job.inputs is not None else [])
    ]
    return GenerateResult(
        created=job.result.created if job.result is not None else 0,
        data=images,
        job_id=job.id,
        model=job.model,
        requested_model=job.route.requested if job.route is not None else None,
        metadata=job.metadata_,
        adjustments=adjustments or None,
        cached=job.cached,
        cost=cost_public(job),
    )


def cost_public(job: Job) -> CostPublic | None:
    cost = job_cost(job)
    return None if cost is None else CostPublic(amount=cost.amount, currency=cost.currency)


def job_public(runtime: Runtime, job: Job, base_url: str) -> JobPublic:
    error = None
    if job.error_code:
        error = ErrorBody(
            code=job.error_code, message=job.error_message or "", param=job.error_param
        )
    return JobPublic(
        id=job.id,
        task=job.task,
        model=job.model,
        requested_model=job.route.requested if job.route is not None else job.model,
        status=job.status,  # type: ignore[arg-type]
        created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at) if job.started_at else None,
        finished_at=as_utc(job.finished_at) if job.finished_at else None,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        cached=job.cached,
        metadata=job.metadata_,
        user=job.options.user,
        result=generate_result(runtime, job, base_url) if job.status == "succeeded" else None,
        error=error,
        cost=cost_public(job),
        fallbacks=None if job.route is None else [c.model for c in job.route.candidates],
        tries=None
        if job.route is None
        else [RouteTryPublic.model_validate(t, from_attributes=True) for t in job.route.tries],
    )


def file_public(runtime: Runtime, entry: FileEntry, base_url: str) -> FilePublic:
    record = entry.record
    token, url_expires_at = runtime.files.links.sign(record.id)
    return FilePublic(
        id=record.id,
        job_id=record.job_id,
        model=entry.model,
        prompt=entry.prompt,
        content_type=record.content_type,
        size_bytes=record.size_bytes,
        width=record.width,
        height=record.height,
        created_at=as_utc(record.created_at),
        expires_at=as_utc(record.expires_at) if record.expires_at else None,
        url=f"{base_url}/v1/media/{token}",
        url_expires_at=url_expires_at,
    )


def page_public(items: list[PublicItem]) -> dict[str, Any]:
    """The paging fields of a `ListEnvelope` of these items (besides `has_more`)."""
    return {
        "data": items,
        "first_id": items[0].id if items else None,
        "last_id": items[-1].id if items else None,
    }


def model_public(runtime: Runtime, principal: Principal, spec: ModelSpec) -> ModelPublic:
    """`spec` as `principal` sees it: whether it can run for its tenant (its own keys count)."""
    reason = runtime.model_directory.unavailable_reason(principal, spec)
    return ModelPublic(
        id=spec.id,
        created=int(runtime.clock.now().timestamp()),
        owned_by=spec.provider,
        provider=spec.provider,
        family=spec.family,
        modality=spec.modality,
        capabilities=list(spec.capabilities),
        aliases=list(spec.aliases),
        description=spec.description,
        available=reason is None,
        unavailable_reason=reason,
        limits=spec.limits.model_dump(),
        defaults=spec.defaults,
        prices={key: str(value) for key, value in spec.prices.items()},
        options_schema=options_schema(spec.family),
    )


def budget_public(status: BudgetStatus) -> BudgetPublic:
    return BudgetPublic(
        period=status.period,
        limit=_money(status.limit),
        spent=format_money(status.spent),
        reserved=format_money(status.reserved),
        remaining=_money(status.remaining),
    )


def tenant_public(runtime: Runtime, tenant: Tenant) -> TenantPublic:
    return TenantPublic(
        id=tenant.id,
        name=tenant.name,
        created_at=as_utc(tenant.created_at),
        allow_models=tenant.allow_models,
        deny_models=tenant.deny_models,
        prices=tenant.prices,
        budget_total=_money(tenant.budget_total),
        budget_monthly=_money(tenant.budget_monthly),
        limits=Limits(**tenant.limits) if tenant.limits else None,
        cache_policy=tenant.cache_policy,
        safety_threshold=tenant.safety_threshold,
        retention_days=tenant.retention_days,
        provider_keys={
            provider: ProviderKeyPublic(last4=last4)
            for provider, last4 in sorted(runtime.tenants.keys.summary(tenant.id).items())
        },
        own_keys_only=tenant.own_keys_only,
        own_keys_billing=tenant.own_keys_billing,
        erased_at=as_utc(tenant.erased_at) if tenant.erased_at else None,
        budgets=[budget_public(status) for status in runtime.billing.budgets(tenant)],
    )


def erasure_public(erasure: Erasure) -> ErasurePublic:
    return ErasurePublic(
        tenant_id=erasure.tenant_id,
        jobs=erasure.jobs,
        files=erasure.files,
        blobs=erasure.blobs,
        api_keys=erasure.api_keys,
        kept=list(KEPT),
    )


def key_public(record: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=record.id,
        tenant_id=record.tenant_id,
        name=record.name,
        prefix=record.prefix,
        scopes=list(record.scopes),
        created_at=as_utc(record.created_at),
        expires_at=as_utc(record.expires_at) if record.expires_at else None,
        revoked_at=as_utc(record.revoked_at) if record.revoked_at else None,
        limits=Limits(**record.limits) if record.limits else None,
    )


def usage_public(report: UsageReport) -> UsagePublic:
    def buckets(table: dict[str, dict[str, int]]) -> dict[str, UsageBucket]:
        return {
            name: UsageBucket(spent=format_money(b["spent"]), images=b["images"], jobs=b["jobs"])
            for name, b in table.items()
        }

    return UsagePublic(
        tenant_id=report.tenant_id,
        since=report.since,
        spent=format_money(report.spent),
        images=report.images,
        jobs=report.jobs,
        by_model=buckets(report.by_model),
        by_day=buckets(report.by_day),
        budgets=[budget_public(status) for status in report.budgets],
    )


def _money(micros: int | None) -> str | None:
    return None if micros is None else format_money(micros)


def worker_public(record: WorkerRecord) -> WorkerPublic:
    return WorkerPublic(
        id=record.id,
        hostname=record.hostname,
        pid=record.pid,
        models=list(record.models),
        started_at=as_utc(record.started_at),
        last_seen_at=as_utc(record.last_seen_at),
        running=list(record.running),
    )


def batch_public(runtime: Runtime, view: BatchView, base_url: str) -> BatchPublic:
    """A batch with its counts; with its items, when they were read."""
    batch = view.batch
    items = None
    if view.items is not None:
        items = []
        for item in view.items:
            error = None
            if item.error is not None:
                error = ErrorBody(
                    code=item.error.code, message=item.error.message, param=item.error.param
                )
            job = item.job
            if job is not None and job.error_code:
                error = ErrorBody(
                    code=job.error_code, message=job.error_message or "", param=job.error_param
                )
            outputs = None
            if job is not None and job.status == "succeeded":
                outputs = generate_result(runtime, job, base_url).data
            items.append(
                BatchItemPublic(
                    index=item.position,
                    status=item.status,  # type: ignore[arg-type]
                    job_id=job.id if job is not None else None,
                    error=error,
                    outputs=outputs,
                )
            )
    return BatchPublic(
        id=batch.id,
        status=view.status,  # type: ignore[arg-type]
        created_at=as_utc(batch.created_at),
        canceled_at=as_utc(batch.canceled_at) if batch.canceled_at else None,
        total=batch.item_count,
        counts=BatchCounts(**view.counts),
        metadata=batch.metadata_,
        items=items,
    )


def webhook_delivery_public(record: DeliveryRecord) -> WebhookDeliveryPublic:
    delivery = record.delivery
    return WebhookDeliveryPublic(
        id=delivery.id,
        event=delivery.event,  # type: ignore[arg-type]
        url=delivery.url,
        state=delivery.state,  # type: ignore[arg-type]
        created_at=as_utc(delivery.created_at),
        next_attempt_at=(as_utc(delivery.next_attempt_at) if delivery.state == PENDING else None),
        finished_at=as_utc(delivery.finished_at) if delivery.finished_at else None,
        attempts=[
            WebhookAttemptPublic(
                attempted_at=as_utc(attempt.attempted_at),
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            )
            for attempt in record.attempts
        ],
    )
