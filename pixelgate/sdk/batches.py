"""`client.batches`: many generate requests in one call (sync and async)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from pixelgate.sdk.async_resources import every_item as every_item_async
from pixelgate.sdk.endpoints import (
    BATCH_PATH,
    BATCHES_PATH,
    batch_body,
    batch_path,
    list_params,
)
from pixelgate.sdk.resources import every_item
from pixelgate.sdk.transport import AsyncTransport, SyncTransport, data_object, data_page
from pixelgate.sdk.types import Batch, MetadataValue, Page


class Batches:
    """Batches of generate requests, each run as a job under the key's limits.

    batch = client.batches.create(
        [{"model": "local/tiny", "prompt": p, "seed": 7} for p in ("a boat", "a house")]
    )
    while not (batch := client.batches.get(batch.id)).is_done:
        time.sleep(1)
    for item in batch.items:
        item.outputs[0].save(f"{item.index}.png")
    """

    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def create(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> Batch:
        """Send up to 100 generate requests (each the body of `images.generate`: `model`,
        `prompt` and the model's options); all are checked before any is queued, and an
        invalid one raises `ValidationError` naming it (`requests.3.width`)."""
        body = batch_body(requests, metadata)
        response = self._transport.request("POST", BATCH_PATH, json=body)
        return Batch.from_dict(data_object(response), self._transport)

    def get(self, batch_id: str) -> Batch:
        """The batch with its counts by status and each item's job, status and images."""
        response = self._transport.request("GET", batch_path(batch_id))
        return Batch.from_dict(data_object(response), self._transport)

    def list(
        self, *, after: str | None = None, before: str | None = None, limit: int | None = None
    ) -> Page[Batch]:
        """A page of the caller's batches, newest first (without their items)."""
        params = list_params({"limit": limit}, after=after, before=before)
        response = self._transport.request("GET", BATCHES_PATH, params=params)
        return data_page(response, lambda item: Batch.from_dict(item, self._transport))

    def iter(self) -> Iterator[Batch]:
        """Every batch, newest first, a page at a time."""
        return every_item(lambda after: self.list(after=after))

    def cancel(self, batch_id: str) -> Batch:
        """Cancel the items not yet run (pending or queued); running ones finish."""
        response = self._transport.request("POST", batch_path(batch_id, "cancel"))
        return Batch.from_dict(data_object(response), self._transport)


class AsyncBatches:
    """The async twin of `Batches`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
    ) -> Batch:
        body = batch_body(requests, metadata)
        response = await self._transport.request("POST", BATCH_PATH, json=body)
        return Batch.from_dict(data_object(response), self._transport)

    async def get(self, batch_id: str) -> Batch:
        response = await self._transport.request("GET", batch_path(batch_id))
        return Batch.from_dict(data_object(response), self._transport)

    async def list(
        self, *, after: str | None = None, before: str | None = None, limit: int | None = None
    ) -> Page[Batch]:
        params = list_params({"limit": limit}, after=after, before=before)
        response = await self._transport.request("GET", BATCHES_PATH, params=params)
        return data_page(response, lambda item: Batch.from_dict(item, self._transport))

    def iter(self) -> AsyncIterator[Batch]:
        return every_item_async(lambda after: self.list(after=after))

    async def cancel(self, batch_id: str) -> Batch:
        response = await self._transport.request("POST", batch_path(batch_id, "cancel"))
        return Batch.from_dict(data_object(response), self._transport)
