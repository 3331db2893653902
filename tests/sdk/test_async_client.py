"""The async client against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image as PILImage

import pixelgate
from pixelgate.errors import NotFound, Timeout, Unauthorized, ValidationError
from tests.conftest import ADMIN_KEY, Server
from tests.sdk.conftest import FAST

pytestmark = pytest.mark.anyio


async def test_generate_url_and_b64_json(server: Server, tmp_path: Path) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        linked = await client.images.generate(model="local/tiny", prompt="a", seed=9, **FAST)
        inline = await client.images.generate(
            model="local/tiny", prompt="a", seed=9, response_format="b64_json", **FAST
        )

        path = await linked.data[0].asave(tmp_path / "linked.png")
        assert linked.data[0].seed == 9
        with PILImage.open(path) as picture:
            assert (picture.format, picture.size) == ("PNG", (64, 64))
        assert inline.data[0].b64_json is not None
        assert await inline.data[0].acontent() == await linked.data[0].acontent()


async def test_submit_events_and_wait(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        job = await client.images.submit(
            model="local/tiny", prompt="b", width=64, height=64, num_steps=12
        )

        types = [event.type async for event in client.jobs.events(job.id)]
        done = await client.jobs.wait(job.id, timeout=30)

    assert types[:2] == ["queued", "running"]
    assert types[-1] == "succeeded"
    assert "progress" in types
    assert done.status == "succeeded"
    assert done.result is not None and done.result.data[0].file_id


async def test_cancel_a_running_job(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        job = await client.images.submit(
            model="local/tiny", prompt="slow", width=128, height=128, num_steps=150
        )
        async for event in client.jobs.events(job.id):
            if event.type == "progress":
                break
        await client.jobs.cancel(job.id)
        done = await client.jobs.wait(job.id, timeout=30)

    assert done.status == "canceled"


async def test_wait_gives_up_after_its_timeout(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        job = await client.images.submit(
            model="local/tiny", prompt="slow", width=128, height=128, num_steps=150
        )
        try:
            with pytest.raises(Timeout):
                await client.jobs.wait(job.id, timeout=0.5)
        finally:
            await client.jobs.cancel(job.id)
        assert (await client.jobs.wait(job.id, timeout=30)).status == "canceled"


async def test_models_and_files(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        ids = [model.id for model in await client.models.list()]
        image = (await client.images.generate(model="local/tiny", prompt="c", **FAST)).data[0]
        stored = await client.files.get(image.file_id)

    assert "local/tiny" in ids
    assert (stored.width, stored.height) == (64, 64)


async def test_errors(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key="pg_wrong") as client:
        with pytest.raises(Unauthorized):
            await client.models.list()
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        with pytest.raises(ValidationError) as caught:
            await client.images.generate(model="local/tiny", prompt="x", width=1000)
        assert caught.value.param == "width"
        with pytest.raises(NotFound):
            await client.jobs.get("job_does_not_exist")


async def test_edit_with_a_mask_and_submit_edit(server: Server, tmp_path: Path) -> None:
    picture = tmp_path / "in.png"
    PILImage.new("RGB", (64, 64), (200, 40, 40)).save(picture)
    mask = PILImage.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # repaint the left half
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        edited = await client.images.edit(
            picture, model="local/tiny", prompt="a blue square", mask=mask_path, seed=3,
            num_steps=4,
        )  # fmt: skip
        job = await client.images.submit_edit(
            picture.read_bytes(), model="local/tiny", prompt="x", strength=0.5, num_steps=4
        )
        done = await client.jobs.wait(job.id, timeout=60)
        saved = await edited.data[0].asave(tmp_path / "out.png")

    result = PILImage.open(saved).convert("RGB")
    assert result.size == (64, 64)
    assert result.getpixel((60, 30)) == (200, 40, 40)  # black in the mask: kept exactly
    assert done.status == "succeeded" and done.result is not None
