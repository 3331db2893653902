"""Admin routes: tenants, keys, prices, budgets, limits and everyone's usage.

Two reaches (see `service.access`): the operators' global `admin` scope reaches everything; a
`tenant_admin` key reaches its own tenant's keys, record and usage, and nothing else. Every
route names the reach it needs."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from pixelgate.api.admin_protocol import (
    ErasurePublic,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    ProviderKeysRotated,
    TenantCreate,
    TenantFields,
    TenantPublic,
    UsagePublic,
    WorkerPublic,
)
from pixelgate.api.deps import AdminPrincipal, GlobalAdmin, RuntimeDep, admin_principal
from pixelgate.api.protocol import Envelope
from pixelgate.api.views import (
    erasure_public,
    key_public,
    tenant_public,
    usage_public,
    worker_public,
)
from pixelgate.errors import NotFound
from pixelgate.service.tenants import TenantChanges, refuse_erased

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(admin_principal)])


def _changes(body: TenantFields) -> TenantChanges:
    """Only the fields the caller sent; `null` clears."""
    sent = body.model_dump(include=body.model_fields_set - {"id"})
    return TenantChanges(**sent)


@router.post("/tenants", response_model=Envelope[TenantPublic], status_code=201)
def create_tenant(
    body: TenantCreate, runtime: RuntimeDep, _: GlobalAdmin
) -> Envelope[TenantPublic]:
    fields = body.model_copy()
    fields.model_fields_set.discard("name")
    tenant = runtime.tenants.create(tenant_id=body.id, name=body.name, changes=_changes(fields))
    return Envelope(data=tenant_public(runtime, tenant))


@router.get("/tenants", response_model=Envelope[list[TenantPublic]])
def list_tenants(runtime: RuntimeDep, _: GlobalAdmin) -> Envelope[list[TenantPublic]]:
    return Envelope(data=[tenant_public(runtime, t) for t in runtime.tenants.list_tenants()])


@router.get("/tenants/{tenant_id}", response_model=Envelope[TenantPublic])
def get_tenant(
    tenant_id: str, runtime: RuntimeDep, principal: AdminPrincipal
) -> Envelope[TenantPublic]:
    principal.require_admin_of(tenant_id)
    return Envelope(data=tenant_public(runtime, runtime.tenants.get(tenant_id)))


@router.patch("/tenants/{tenant_id}", response_model=Envelope[TenantPublic])
def update_tenant(
    tenant_id: str, body: TenantFields, runtime: RuntimeDep, _: GlobalAdmin
) -> Envelope[TenantPublic]:
    """Change a tenant's model lists, prices, budgets, limits, cache policy or own provider
    keys (`provider_keys`: set, or `null` to remove; they are never shown again)."""
    tenant = runtime.tenants.update(tenant_id, _changes(body))
    return Envelope(data=tenant_public(runtime, tenant))


@router.post("/tenants/{tenant_id}/erase", response_model=Envelope[ErasurePublic])
def erase_tenant(tenant_id: str, runtime: RuntimeDep, _: GlobalAdmin) -> Envelope[ErasurePublic]:
    """Delete everything of a tenant (jobs, events, files and their bytes, inputs, keys,
    idempotency keys, ledger entries, usage) but its budget accounts and a tombstone of its
    record. 409 while it has jobs queued or running, and for the default tenant."""
    return Envelope(data=erasure_public(runtime.eraser.erase(tenant_id)))


@router.post("/provider-keys/rotate", response_model=Envelope[ProviderKeysRotated])
def rotate_provider_keys(runtime: RuntimeDep, _: GlobalAdmin) -> Envelope[ProviderKeysRotated]:
    """Encrypt every tenant's own provider keys and webhook signing secrets again under the
    first key of `PIXELGATE_PROVIDER_KEYS_SECRET` (after a new key was put first, the old one
    kept after it); then the old key can be dropped."""
    rotated = runtime.tenants.keys.rotate()
    webhook_secrets = runtime.webhook_secrets.reencrypt()
    return Envelope(data=ProviderKeysRotated(rotated=rotated, webhook_secrets=webhook_secrets))


@router.post("/keys", response_model=Envelope[KeyCreated], status_code=201)
def create_key(
    body: KeyCreate, runtime: RuntimeDep, principal: AdminPrincipal
) -> Envelope[KeyCreated]:
    """A new API key for a tenant. The key is in this answer and nowhere else, ever."""
    principal.require_admin_of(body.tenant_id)
    if "admin" in body.scopes:
        principal.require("admin")  # only the operators grant their own scope
    refuse_erased(runtime.tenants.get(body.tenant_id))
    record, key = runtime.access.create_key(
        tenant_id=body.tenant_id,
        name=body.name,
        scopes=frozenset(body.scopes),
        expires_at=body.expires_at,
        limits=body.limits.model_dump(exclude_none=True) if body.limits else None,
    )
    public = key_public(record)
    return Envelope(data=KeyCreated(**public.model_dump(), key=key))


@router.get("/keys", response_model=Envelope[list[KeyPublic]])
def list_keys(
    runtime: RuntimeDep, principal: AdminPrincipal, tenant_id: str | None = None
) -> Envelope[list[KeyPublic]]:
    """Keys of one tenant, or of all (global admins); a tenant admin's of its own tenant."""
    if not principal.is_global_admin:
        tenant_id = tenant_id or principal.tenant_id
        principal.require_admin_of(tenant_id)
    return Envelope(data=[key_public(record) for record in runtime.access.list_keys(tenant_id)])


@router.post("/keys/{key_id}/revoke", response_model=Envelope[KeyPublic])
def revoke_key(key_id: str, runtime: RuntimeDep, principal: AdminPrincipal) -> Envelope[KeyPublic]:
    if not principal.is_global_admin:
        record = runtime.access.get_key(key_id)
        if record.tenant_id != principal.tenant_id:  # not found, as another tenant's jobs are
            raise NotFound(f"No API key {key_id!r}", param="key_id")
    return Envelope(data=key_public(runtime.access.revoke(key_id)))


@router.get("/usage", response_model=Envelope[list[UsagePublic]])
def all_usage(
    runtime: RuntimeDep,
    principal: AdminPrincipal,
    tenant_id: str | None = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Envelope[list[UsagePublic]]:
    """Spend and images per tenant, by model and by day (a tenant admin: its own)."""
    if not principal.is_global_admin:
        tenant_id = tenant_id or principal.tenant_id
        principal.require_admin_of(tenant_id)
    tenants = [runtime.tenants.get(tenant_id)] if tenant_id else runtime.tenants.list_tenants()
    return Envelope(data=[usage_public(runtime.billing.usage(t, days=days)) for t in tenants])


MAX_WITHIN_SECONDS = 366 * 86400
"""A year: a longer look back asks for nothing more, and too long a one overflows a date."""


@router.get("/workers", response_model=Envelope[list[WorkerPublic]])
def list_workers(
    runtime: RuntimeDep,
    _: GlobalAdmin,
    within_seconds: Annotated[float, Query(gt=0, le=MAX_WITHIN_SECONDS, allow_inf_nan=False)] = 60,
) -> Envelope[list[WorkerPublic]]:
    """Cluster workers seen in the last `within_seconds`, with their models and jobs."""
    since = runtime.clock.now() - timedelta(seconds=within_seconds)
    found = runtime.workers.seen_since(since)
    return Envelope(data=[worker_public(record) for record in found])
