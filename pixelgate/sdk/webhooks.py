"""`client.webhooks`: the tenant's webhook signing secret (sync and async). Check deliveries
with `pixelgate.verify_webhook(body, headers, secret)`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pixelgate.sdk.transport import AsyncTransport, SyncTransport, data_list, data_object

SECRET_PATH = "/v1/webhooks/secret"
ROTATE_PATH = "/v1/webhooks/secret/rotate"


def deliveries_path(job_id: str) -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}/webhooks"


class Webhooks:
    """The key's tenant's signing secret, and a job's deliveries.

    secret = client.webhooks.secret()          # whsec_..., made on first read
    event = pixelgate.verify_webhook(body, headers, secret)   # in the receiver
    """

    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def secret(self) -> str:
        """The tenant's signing secret (`whsec_...`)."""
        return str(data_object(self._transport.request("GET", SECRET_PATH))["key"])

    def rotate_secret(self) -> str:
        """A new secret; deliveries carry signatures by both for the next 24 hours."""
        return str(data_object(self._transport.request("POST", ROTATE_PATH))["key"])

    def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        """The job's deliveries in order, each with its tries (`GET /v1/jobs/{id}/webhooks`)."""
        return data_list(self._transport.request("GET", deliveries_path(job_id)))


class AsyncWebhooks:
    """The async twin of `Webhooks`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def secret(self) -> str:
        return str(data_object(await self._transport.request("GET", SECRET_PATH))["key"])

    async def rotate_secret(self) -> str:
        return str(data_object(await self._transport.request("POST", ROTATE_PATH))["key"])

    async def deliveries(self, job_id: str) -> list[dict[str, Any]]:
        return data_list(await self._transport.request("GET", deliveries_path(job_id)))
