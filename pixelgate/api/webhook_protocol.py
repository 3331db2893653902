"""The bodies of the webhook routes (pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pixelgate.service.webhook_targets import WebhookEvent


class WebhookSecretPublic(BaseModel):
    key: str = Field(
        description="The tenant's signing secret, `whsec_` and base64 (Standard Webhooks): "
        "verify deliveries with it (`pixelgate.verify_webhook`, or any Standard Webhooks library)."
    )


class WebhookAttemptPublic(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    error: str | None = Field(description="Why the try failed; null when it was delivered.")
    duration_ms: float


class WebhookDeliveryPublic(BaseModel):
    id: str = Field(description="The `webhook-id` header, the same on every try.")
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event: WebhookEvent
    url: str
    state: Literal["pending", "delivered", "failed"] = Field(
        description="`pending` (not yet sent, or to be tried again), `delivered` (a 2xx "
        "answer) or `failed` (given up once the retry window closed)."
    )
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    finished_at: datetime | None
    attempts: list[WebhookAttemptPublic] = Field(description="Each try, oldest first.")
