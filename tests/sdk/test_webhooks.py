"""`client.webhooks` against the real server, and `pixelgate.verify_webhook` against deliveries
signed by the specification's own library (`standardwebhooks`)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as StandardWebhook

import pixelgate
from tests.conftest import Server
from tests.helpers import tenant_key

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def signed(body: bytes, *, msg_id: str = "msg_1", at: float | None = None) -> dict[str, str]:
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    signature = StandardWebhook(SECRET).sign(msg_id, moment, body)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(moment.timestamp())),
        "Webhook-Signature": signature,
    }


def test_verify_webhook_returns_the_body_of_a_genuine_delivery() -> None:
    body = json.dumps({"type": "job.succeeded", "data": {"id": "job_1"}}).encode()
    assert pixelgate.verify_webhook(body, signed(body), SECRET)["data"]["id"] == "job_1"
    assert pixelgate.verify_webhook(body.decode(), signed(body), SECRET)["type"] == "job.succeeded"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        (lambda body, headers: (body + b" ", headers), "webhook-signature"),
        (lambda body, headers: (body, {**headers, "Webhook-Id": "msg_2"}), "webhook-signature"),
        (lambda body, headers: (body, signed(body, at=time.time() - 600)), "webhook-timestamp"),
        (lambda body, headers: (body, signed(body, at=time.time() + 600)), "webhook-timestamp"),
        (
            lambda body, headers: (body, {k: v for k, v in headers.items() if k != "Webhook-Id"}),
            "webhook-id",
        ),
    ],
    ids=["changed-body", "other-id", "too-old", "too-new", "missing-id"],
)
def test_verify_webhook_refuses_what_was_not_signed_so(change: object, param: str) -> None:
    body = b'{"type":"job.failed"}'
    changed_body, headers = change(body, signed(body))  # type: ignore[operator]
    with pytest.raises(pixelgate.WebhookVerificationError) as caught:
        pixelgate.verify_webhook(changed_body, headers, SECRET)
    assert caught.value.param == param
    assert isinstance(caught.value, pixelgate.Error)


def test_the_client_reads_and_rotates_the_tenants_secret(server: Server) -> None:
    with server.client() as admin:
        key = tenant_key(admin)
    with pixelgate.Client(base_url=server.url, api_key=key) as client:
        first = client.webhooks.secret()
        assert first.startswith("whsec_") and client.webhooks.secret() == first
        rotated = client.webhooks.rotate_secret()
        assert rotated != first and client.webhooks.secret() == rotated
        assert len(base64.b64decode(rotated.removeprefix("whsec_"))) == 32


@pytest.mark.anyio
async def test_the_async_client_reads_the_secret(server: Server) -> None:
    with server.client() as admin:
        key = tenant_key(admin)
    async with pixelgate.AsyncClient(base_url=server.url, api_key=key) as client:
        secret = await client.webhooks.secret()
        assert await client.webhooks.rotate_secret() != secret
