"""Webhook routes: the tenant's signing secret, and a job's deliveries."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pixelgate.api import views
from pixelgate.api.deps import GeneratePrincipal, ReadPrincipal, RuntimeDep
from pixelgate.api.protocol import Envelope, ErrorEnvelope
from pixelgate.api.webhook_protocol import WebhookDeliveryPublic, WebhookSecretPublic

router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (401, 403, 404)
}


@router.get(
    "/v1/webhooks/secret",
    response_model=Envelope[WebhookSecretPublic],
    responses=ERRORS,
    tags=["webhooks"],
)
def get_webhook_secret(
    principal: GeneratePrincipal, runtime: RuntimeDep
) -> Envelope[WebhookSecretPublic]:
    """The tenant's webhook signing secret (`whsec_...`), made on first read. Needs the
    `generate` scope, as sending a webhook does."""
    key = runtime.webhook_secrets.current(principal.tenant_id)
    return Envelope(data=WebhookSecretPublic(key=key))


@router.post(
    "/v1/webhooks/secret/rotate",
    response_model=Envelope[WebhookSecretPublic],
    responses=ERRORS,
    tags=["webhooks"],
)
def rotate_webhook_secret(
    principal: GeneratePrincipal, runtime: RuntimeDep
) -> Envelope[WebhookSecretPublic]:
    """A new signing secret for the tenant. For the next 24 hours deliveries carry two
    signatures, by the new secret and the old one, so receivers can switch over without
    refusing any."""
    key = runtime.webhook_secrets.rotate(principal.tenant_id)
    return Envelope(data=WebhookSecretPublic(key=key))


@router.get(
    "/v1/jobs/{job_id}/webhooks",
    response_model=Envelope[list[WebhookDeliveryPublic]],
    responses=ERRORS,
    tags=["jobs"],
)
def list_job_webhooks(
    job_id: str, principal: ReadPrincipal, runtime: RuntimeDep
) -> Envelope[list[WebhookDeliveryPublic]]:
    """The job's webhook deliveries in order, each with its tries (when, the answer or the
    error, how long)."""
    runtime.jobs.get(principal, job_id)  # NOT_FOUND for another tenant's job
    records = runtime.webhooks.deliveries(job_id)
    return Envelope(data=[views.webhook_delivery_public(record) for record in records])
