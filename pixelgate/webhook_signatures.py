"""Webhook signatures as the Standard Webhooks specification makes them
(https://www.standardwebhooks.com): the server signs each delivery with its tenant's secret,
a receiver checks it with `verify_webhook` (or any Standard Webhooks library).

A secret is `whsec_` and the base64 of 32 random bytes. A delivery carries the headers
`webhook-id` (the same on every try of one delivery), `webhook-timestamp` (unix seconds of
this try) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
several separated by spaces while a rotated secret's predecessor is still honoured.

The standard library only: the server and the client-only SDK both import it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pixelgate.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60
"""How far a delivery's timestamp may be from the receiver's clock (the specification's
suggestion): an older one may be a replay."""


def new_secret() -> str:
    """A fresh signing secret, `whsec_<base64 of 32 random bytes>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError:
        raise WebhookVerificationError(
            "The webhook secret is not whsec_ followed by base64", param="secret"
        ) from None
    if not key:
        raise WebhookVerificationError("The webhook secret is empty", param="secret")
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one signature per secret, separated by spaces."""
    return " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_)


def verify_webhook(
    payload: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_seconds: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a delivery and return its JSON body. `payload` is the raw body as received (not
    parsed and dumped again: one changed byte fails), `headers` the request's headers (any
    case), `secret` the tenant's `whsec_...` (`GET /v1/webhooks/secret`).

    Raises `pixelgate.WebhookVerificationError` when a header is missing, no signature
    matches, or the timestamp is more than `tolerance_seconds` from now (a replay)."""
    body = payload.encode() if isinstance(payload, str) else payload
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [
        name
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        if not lowered.get(name)
    ]
    if missing:
        raise WebhookVerificationError(f"Missing header {missing[0]}", param=missing[0])
    message_id, sent_at = lowered["webhook-id"], lowered["webhook-timestamp"]
    try:
        timestamp = int(sent_at)
    except ValueError:
        raise WebhookVerificationError(
            f"webhook-timestamp is not unix seconds: {sent_at!r}", param="webhook-timestamp"
        ) from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp is {current - timestamp:+.0f}s from now, past the "
            f"{tolerance_seconds:g}s allowed (a replayed or delayed delivery)",
            param="webhook-timestamp",
        )
    expected = signature(secret, message_id, timestamp, body).encode()
    sent = lowered["webhook-signature"].split(" ")
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in sent):
        raise WebhookVerificationError(
            "No webhook-signature matches the body and secret", param="webhook-signature"
        )
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("The delivery's body is not JSON") from None
