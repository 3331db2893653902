"""One pixelgate server for the OpenAI surface, with its OpenAI provider aimed at the fake
OpenAI upstream on loopback, and the official `openai` SDK's clients pointed at it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import ADMIN_KEY, Server
from tests.providers.upstreams.openai import FakeOpenAI

UPSTREAM_KEY = "sk-upstream-test-0123456789"
SURFACES = ("/v1", "/oai/v1")


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, upstream: FakeOpenAI
) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("openai-surface") / "data"
    server = Server(
        data,
        models_dir,
        PIXELGATE_OPENAI_BASE_URL=upstream.url,
        PIXELGATE_OPENAI_API_KEY=UPSTREAM_KEY,
        PIXELGATE_PROVIDER_MAX_RETRIES="0",
    ).start()
    yield server
    server.stop()


@pytest.fixture(params=SURFACES)
def client(request: pytest.FixtureRequest, gateway: Server) -> Iterator[openai.OpenAI]:
    """The sync SDK client, once per mount."""
    with openai.OpenAI(
        api_key=ADMIN_KEY, base_url=gateway.url + request.param, max_retries=0, timeout=60
    ) as sdk:
        yield sdk


@pytest.fixture
async def async_client(gateway: Server) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key=ADMIN_KEY, base_url=gateway.url + "/v1", max_retries=0, timeout=60
    ) as sdk:
        yield sdk


@pytest.fixture
def admin(gateway: Server) -> Iterator[httpx.Client]:
    with gateway.client() as native:
        yield native


def images(result: openai.types.ImagesResponse) -> list[openai.types.Image]:
    """The images of a response (the SDK types `data` as optional)."""
    assert result.data is not None
    return result.data


def png(size: tuple[int, int] = (64, 64), color: tuple[int, ...] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA" if len(color) == 4 else "RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def message_of(error: openai.APIStatusError) -> str:
    """The `message` of the error body (the exception's own text adds "Error code: ...")."""
    body = error.body
    assert isinstance(body, dict), body
    return str(body["message"])


def image_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
