"""SDK: images.remove_background (sync and async) and jobs.list, against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pixelgate
from pixelgate.errors import MustProvideFile, ValidationError
from tests.conftest import ADMIN_KEY, Server
from tests.rembg_server import disc_picture, is_cut_out, rembg_server
from tests.sdk.conftest import FAST


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    instance = rembg_server(tmp_path_factory.mktemp("sdk-rembg") / "data", models_dir)
    yield instance
    instance.stop()


def test_remove_background_from_a_path(client: pixelgate.Client, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(disc_picture("JPEG"))

    result = client.images.remove_background(photo)

    assert result.model == "rembg/u2netp"
    cutout = result.data[0].to_pil()
    assert (cutout.mode, cutout.size) == ("RGBA", (200, 150))
    assert is_cut_out(cutout)
    saved = result.data[0].save(tmp_path / "cutout.png")
    assert saved.read_bytes().startswith(b"\x89PNG")


def test_remove_background_from_bytes_inline_as_webp(client: pixelgate.Client) -> None:
    result = client.images.remove_background(
        disc_picture(), output_format="webp", response_format="b64_json", metadata={"k": "v"}
    )

    image = result.data[0]
    assert image.url is None and image.b64_json is not None
    assert image.content()[8:12] == b"WEBP"
    assert is_cut_out(image.to_pil())
    assert result.metadata == {"k": "v"}


def test_remove_background_with_the_seeds_signature(client: pixelgate.Client) -> None:
    result = client.images.remove_background(
        disc_picture("JPEG"), filename="photo.jpg", content_type="image/jpeg"
    )

    cutout = result.data[0].to_pil()
    assert (cutout.format, cutout.mode) == ("PNG", "RGBA")
    assert is_cut_out(cutout)


def test_errors_are_the_sdk_exceptions(client: pixelgate.Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.images.remove_background(b"not a picture")
    assert caught.value.param == "image"
    with pytest.raises(ValidationError, match="image is empty"):
        client.images.remove_background(b"", model="u2netp")
    with pytest.raises(MustProvideFile):
        client.images._transport.request(  # no picture at all: the route's own answer
            "POST", "/v1/inference/images/remove-background", json={"model": "u2netp"}
        )


def test_jobs_list_filters_by_status(client: pixelgate.Client) -> None:
    done = client.images.generate(model="local/tiny", prompt="a listed job", **FAST)
    cut = client.images.submit_remove_background(disc_picture())
    client.jobs.wait(cut.id, timeout=60)

    recent = client.jobs.list(limit=5)
    succeeded = client.jobs.list(status="succeeded", limit=100)
    failed = client.jobs.list(status="failed")

    assert [job.id for job in recent][:2] == [cut.id, done.job_id]
    assert {cut.id, done.job_id} <= {job.id for job in succeeded}
    assert all(job.status == "succeeded" for job in succeeded)
    assert all(job.status == "failed" for job in failed)
    assert len(client.jobs.list(limit=1)) == 1
    by_id = {job.id: job for job in succeeded}
    assert by_id[cut.id].task == "remove-background"
    assert by_id[cut.id].result is not None


@pytest.mark.anyio
async def test_the_async_client_does_the_same(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        result = await client.images.remove_background(
            disc_picture("WEBP"), filename="disc.webp", content_type="image/webp"
        )
        job = await client.images.submit_remove_background(disc_picture())
        finished = await client.jobs.wait(job.id, timeout=60)
        listed = await client.jobs.list(status="succeeded", limit=100)

    assert result.data[0].url is not None
    assert finished.status == "succeeded"
    assert {result.job_id, job.id} <= {item.id for item in listed}
