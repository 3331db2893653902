"""The SDK seed's own calls: `images.generate_url(prompt, options)` answering the link, with the
options under the seed's names, and `images.remove_background(data, filename=...,
content_type=...)` uploading the picture as that file (sync and async clients)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

import pixelgate
from pixelgate.errors import ValidationError
from tests.conftest import ADMIN_KEY, Server
from tests.providers.upstreams.server import FakeUpstream, Received, Reply

REMOVE_BACKGROUND = "/v1/inference/images/remove-background"


def fetched(url: str) -> Image.Image:
    response = httpx.get(url)  # the signed link is the credential
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def test_generate_url_answers_the_link(client: pixelgate.Client, server: Server) -> None:
    url = client.images.generate_url(
        "a red circle",
        {"modelName": "local/tiny", "size": "96x32", "numSteps": 2, "outputFormat": "webp"},
    )

    assert isinstance(url, str)
    assert url.startswith(server.url + "/v1/media/")
    picture = fetched(url)
    assert (picture.format, picture.size) == ("WEBP", (96, 32))


def test_generate_url_takes_the_gateway_and_serverless_names(client: pixelgate.Client) -> None:
    gateway = client.images.generate_url("x", {"model": "tiny", "size": "64x64", "quality": "low"})
    serverless = client.images.generate_url("x", {"model_name": "tiny", "width": 32, "height": 48})

    assert fetched(gateway).size == (64, 64)
    assert fetched(serverless).size == (32, 48)


def test_generate_url_refuses_what_is_not_one_link(client: pixelgate.Client) -> None:
    options = {"modelName": "tiny", "numSteps": 1}
    with pytest.raises(ValidationError) as several:
        client.images.generate_url("x", {**options, "numberOfImagesToGenerate": 2})
    with pytest.raises(ValidationError) as inline:
        client.images.generate_url("x", {**options, "responseFormat": "b64_json"})

    assert several.value.param == "n"
    assert "made 2 images: ask for one, or use images.generate" in several.value.message
    assert inline.value.param == "response_format"


def test_generate_url_raises_the_servers_errors(client: pixelgate.Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.images.generate_url("x", {"modelName": "tiny", "model": "sd-turbo"})

    assert caught.value.param == "modelName"


@pytest.mark.anyio
async def test_the_async_client_answers_the_link(server: Server) -> None:
    async with pixelgate.AsyncClient(base_url=server.url, api_key=ADMIN_KEY) as client:
        url = await client.images.generate_url("a circle", {"modelName": "tiny", "numSteps": 1})

    assert fetched(url).size == (64, 64)


class RecordingServer(FakeUpstream):
    """Answers every background removal with one stored image, as pixelgate would."""

    def handle(self, request: Received) -> Reply:
        result = {
            "created": 1,
            "job_id": "job_1",
            "model": "rembg/u2netp",
            "data": [{"file_id": "file_1", "url": self.url + "/v1/media/file_1"}],
        }
        return Reply.json({"status": "ok", "data": result})


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    with RecordingServer() as fake:
        yield fake


def test_remove_background_uploads_the_named_file(recorder: RecordingServer) -> None:
    with pixelgate.Client(base_url=recorder.url, api_key="pg_key", max_retries=0) as client:
        named = client.images.remove_background(
            b"jpeg bytes", filename="photo.jpg", content_type="image/jpeg"
        )
        guessed = client.images.remove_background(b"webp bytes", filename="cat.webp")
        bare = client.images.remove_background(b"raw", model="u2netp", output_format="webp")

    assert named.data[0].url == recorder.url + "/v1/media/file_1"
    first, second, third = (request.parts for request in recorder.requests_to(REMOVE_BACKGROUND))
    assert (first["image"].data, first["image"].filename, first["image"].content_type) == (
        b"jpeg bytes",
        "photo.jpg",
        "image/jpeg",
    )
    assert (first["response_format"].text, first["async"].text) == ("url", "false")
    assert (second["image"].filename, second["image"].content_type) == ("cat.webp", "image/webp")
    assert (third["image"].filename, third["image"].content_type) == (
        "image",
        "application/octet-stream",
    )
    assert (third["model"].text, third["output_format"].text) == ("u2netp", "webp")
    assert guessed.model == bare.model == "rembg/u2netp"
