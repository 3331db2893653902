"""`client.batches`, sync and async, against a real server."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image as PILImage

import pixelgate
from pixelgate.errors import NotFound, ValidationError
from tests.conftest import ADMIN_KEY, Server
from tests.helpers import SLOW
from tests.sdk.conftest import FAST


def requests(count: int, **options: object) -> list[dict[str, object]]:
    return [
        {"model": "local/tiny", "prompt": f"item {index}", "seed": index, **FAST, **options}
        for index in range(count)
    ]


def test_create_get_list_and_read_outputs(client: pixelgate.Client) -> None:
    batch = client.batches.create(requests(2), metadata={"run": "sdk"})
    assert isinstance(batch, pixelgate.Batch)
    assert batch.total == 2 and batch.metadata == {"run": "sdk"}
    while not (batch := client.batches.get(batch.id)).is_done:
        time.sleep(0.2)
    assert batch.status == "completed" and batch.finished == 2
    assert batch.items is not None
    for index, item in enumerate(batch.items):
        assert (item.index, item.status) == (index, "succeeded")
        assert item.job_id is not None
        assert client.jobs.get(item.job_id).result is not None
        picture = item.outputs[0].to_pil()
        assert picture.size == (64, 64)
        assert item.outputs[0].seed == index
    listed = client.batches.list(limit=1)
    assert [found.id for found in listed] == [batch.id] and listed[0].items is None
    assert batch.id in [found.id for found in client.batches.iter()]


def test_an_invalid_request_raises_naming_it(client: pixelgate.Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.batches.create([*requests(1), {"model": "local/tiny", "prompt": "x", "width": 7}])
    assert caught.value.param == "requests.1.width"
    with pytest.raises(NotFound):
        client.batches.get("batch_missing")


@pytest.mark.anyio
async def test_the_async_client_creates_cancels_and_lists(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        batch = await client.batches.create(
            [{**SLOW, "prompt": f"slow {index}"} for index in range(6)]
        )
        canceled = await client.batches.cancel(batch.id)
        assert canceled.canceled_at is not None
        assert canceled.counts["pending"] == 0
        assert canceled.counts["canceled"] >= 1
        for item in canceled.items or []:
            if item.job_id is not None and item.status == "running":
                await client.jobs.cancel(item.job_id)
        while not (batch := await client.batches.get(batch.id)).is_done:
            await asyncio.sleep(0.2)
        assert batch.status == "canceled"
        page = await client.batches.list(limit=100)
        assert batch.id in [found.id for found in page]
        assert batch.id in [found.id async for found in client.batches.iter()]


def test_outputs_are_images(client: pixelgate.Client) -> None:
    batch = client.batches.create(requests(1, output_format="webp"))
    while not (batch := client.batches.get(batch.id)).is_done:
        time.sleep(0.2)
    assert batch.items is not None
    data = batch.items[0].outputs[0].content()
    assert pixelgate.sdk.types.media_type_of(data) == "image/webp"
    assert PILImage.open(io.BytesIO(data)).format == "WEBP"
