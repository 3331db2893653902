"""SDK: images.upscale and submit_upscale (sync and async), against the shared real server with
the model-free Lanczos upscaler."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import pixelgate
from pixelgate.errors import MustProvideFile, ValidationError
from tests.conftest import ADMIN_KEY, Server


def picture(size: tuple[int, int] = (24, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def test_upscale_a_path_four_times(client: pixelgate.Client, tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    small.write_bytes(picture())

    result = client.images.upscale(small, factor=4)

    assert result.model == "pixelgate/lanczos"
    large = result.data[0].to_pil()
    assert large.size == (96, 64)
    expected = Image.open(small).resize((96, 64), Image.Resampling.LANCZOS)
    assert large.tobytes() == expected.tobytes()


def test_upscale_a_stored_result_by_its_file_id_and_follow_the_job(
    client: pixelgate.Client,
) -> None:
    first = client.images.upscale(picture(), response_format="b64_json", metadata={"k": "v"})
    assert first.data[0].to_pil().size == (48, 32)  # the model's first factor: 2
    assert first.metadata == {"k": "v"}

    job = client.images.submit_upscale(file_id=first.data[0].file_id, factor=2)
    done = client.jobs.wait(job.id, timeout=60)

    assert (done.task, done.status) == ("upscale", "succeeded")
    assert done.result is not None
    assert done.result.data[0].to_pil().size == (96, 64)


def test_errors_are_the_sdk_exceptions(client: pixelgate.Client) -> None:
    with pytest.raises(ValidationError) as bad:
        client.images.upscale(picture(), factor=3)
    assert bad.value.param == "factor"
    with pytest.raises(MustProvideFile):
        client.images.upscale(factor=2)


@pytest.mark.anyio
async def test_the_async_client_does_the_same(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        result = await client.images.upscale(picture(), factor=4, model="lanczos")
        job = await client.images.submit_upscale(picture((8, 8)))
        done = await client.jobs.wait(job.id, timeout=60)

    assert result.data[0].to_pil().size == (96, 64)
    assert done.result is not None
    assert done.result.data[0].to_pil().size == (16, 16)
