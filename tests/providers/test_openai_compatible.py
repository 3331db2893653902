"""OpenAI-compatible image servers as upstreams, against the fake OpenAI Images API on
loopback: catalog entries made from the operator's settings, and OpenAI's requests sent under
each upstream's own root and key."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pixelgate.catalog import Catalog
from pixelgate.errors import BackendError, ModelUnavailable, ValidationError
from pixelgate.providers import CancelToken, GeneratedImage, ImageInput, ImageTask
from pixelgate.providers.openai_compatible import OpenAICompatibleProvider, catalog_entries
from pixelgate.settings import Settings
from tests.providers.conftest import Progress
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.openai import EDITS, GENERATIONS, FakeOpenAI, openai_error
from tests.providers.upstreams.server import Reply

KEY = "sk-local-0123456789"


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(KEY) as fake:
        yield fake


def upstreams(fake: FakeOpenAI, **more: Any) -> dict[str, Any]:
    return {
        "localai": {
            "base_url": fake.url + "/v1/",
            "api_key": KEY,
            "models": [
                "dall-e-2",
                {"name": "sdxl", "capabilities": ["generate", "edit"], "price": "0.01"},
            ],
        },
        **more,
    }


@pytest.fixture
def settings(upstream: FakeOpenAI, make_settings: Any) -> Settings:
    settings: Settings = make_settings(openai_compatible_upstreams=upstreams(upstream))
    return settings


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return Catalog.load(configured=catalog_entries(settings))


@pytest.fixture
def provider(settings: Settings) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider.from_settings(settings)


def run(
    provider: OpenAICompatibleProvider,
    catalog: Catalog,
    model: str,
    *,
    kind: str = "generate",
    image: ImageInput | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    validated = catalog.validate_options(spec, {"prompt": "a lighthouse", **options})
    task = ImageTask(kind=kind, options=validated, image=image)  # type: ignore[arg-type]
    return provider.run(spec, task, progress=Progress(), cancel=CancelToken())


def test_each_configured_model_is_a_catalog_entry(catalog: Catalog, tmp_path: Path) -> None:
    plain, priced = catalog.resolve("localai/dall-e-2"), catalog.resolve("localai/sdxl")
    assert (plain.provider, plain.family, plain.source) == (
        "openai-compatible", "openai-compatible", "dall-e-2",
    )  # fmt: skip
    assert plain.capabilities == ("generate",) and plain.prices == {"default": Decimal(0)}
    assert priced.capabilities == ("generate", "edit")
    assert priced.prices == {"default": Decimal("0.01")}

    operator = tmp_path / "catalog.toml"
    operator.write_text(
        '[[models]]\nid = "localai/dall-e-2"\nprovider = "openai-compatible"\n'
        'family = "openai-compatible"\nsource = "dall-e-2"\nprices = { default = "0.5" }\n'
    )
    replaced = Catalog.load(operator, configured=list(catalog))
    assert replaced.resolve("localai/dall-e-2").prices == {"default": Decimal("0.5")}


def test_generation_sends_openais_request_under_the_upstreams_root(
    provider: OpenAICompatibleProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    images = run(provider, catalog, "localai/dall-e-2", n=2, size="256x256")

    [request] = upstream.received
    assert request.path == GENERATIONS
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "dall-e-2",
        "prompt": "a lighthouse",
        "n": 2,
        "response_format": "b64_json",
        "size": "256x256",
    }
    assert [image.data for image in images] == upstream.made
    assert (images[0].width, images[0].height) == (256, 256)


def test_unset_options_are_left_to_the_server(
    provider: OpenAICompatibleProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    run(provider, catalog, "localai/sdxl", quality="high")
    assert upstream.received[0].json == {
        "model": "sdxl",
        "prompt": "a lighthouse",
        "n": 1,
        "response_format": "b64_json",
        "quality": "high",
    }


def test_a_model_may_be_asked_without_response_format(
    upstream: FakeOpenAI, make_settings: Any
) -> None:
    """OpenAI itself refuses `response_format` for gpt-image models (so does the fake)."""
    config = upstreams(upstream)
    config["localai"]["models"] = [{"name": "gpt-image-1", "response_format": None}]
    settings = make_settings(openai_compatible_upstreams=config)
    catalog = Catalog.load(configured=catalog_entries(settings))

    [image] = run(OpenAICompatibleProvider.from_settings(settings), catalog, "localai/gpt-image-1")

    assert "response_format" not in upstream.received[0].json
    assert image.data == upstream.made[0]


def test_an_edit_goes_as_openai_multipart(
    provider: OpenAICompatibleProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    upstream.script(EDITS, Reply.json({"created": 1, "data": [{"b64_json": _png(48, 32)}]}))
    image = ImageInput(image_bytes(48, 32), "image/png", 48, 32)

    [edited] = run(provider, catalog, "localai/sdxl", kind="edit", image=image)

    [request] = upstream.received
    assert request.path == EDITS and request.content_type == "multipart/form-data"
    assert request.parts["model"].text == "sdxl"
    assert request.parts["image"].filename == "image.png"
    assert (edited.width, edited.height) == (48, 32)


def test_a_keyless_upstream_gets_no_authorization_header(
    upstream: FakeOpenAI, make_settings: Any
) -> None:
    config = upstreams(upstream)
    del config["localai"]["api_key"]
    settings = make_settings(openai_compatible_upstreams=config)
    catalog = Catalog.load(configured=catalog_entries(settings))
    upstream.script(GENERATIONS, Reply.json({"created": 1, "data": [{"b64_json": _png(8, 8)}]}))

    run(OpenAICompatibleProvider.from_settings(settings), catalog, "localai/dall-e-2")

    assert "authorization" not in upstream.received[0].headers


def test_errors_are_mapped_and_retried(
    provider: OpenAICompatibleProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    upstream.script(
        GENERATIONS, openai_error(400, "size not supported", type="invalid", param="size")
    )
    with pytest.raises(ValidationError) as caught:
        run(provider, catalog, "localai/dall-e-2", size="999x999")
    assert (caught.value.param, caught.value.message) == ("size", "size not supported")

    upstream.script(GENERATIONS, openai_error(429, "busy", type="rate", retry_after="1"))
    started = time.monotonic()
    run(provider, catalog, "localai/dall-e-2")
    assert time.monotonic() - started >= 0.18

    failing = openai_error(502, "bad gateway", type="server_error")
    upstream.script(GENERATIONS, failing, failing, failing)
    with pytest.raises(BackendError) as server_error:
        run(provider, catalog, "localai/dall-e-2")
    assert server_error.value.message == (
        "The openai-compatible provider answered HTTP 502: bad gateway"
    )


def test_a_size_that_is_not_width_x_height_is_refused(catalog: Catalog) -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate_options(
            catalog.resolve("localai/dall-e-2"), {"prompt": "x", "size": "big"}
        )
    assert caught.value.param == "size"


def test_a_model_of_an_upstream_no_longer_configured_is_unavailable(
    provider: OpenAICompatibleProvider, catalog: Catalog, make_settings: Any
) -> None:
    spec = catalog.resolve("localai/dall-e-2")
    assert provider.unavailable_reason(spec) is None
    bare = OpenAICompatibleProvider.from_settings(make_settings())
    reason = bare.unavailable_reason(spec)
    assert reason == (
        "provider 'openai-compatible' has no upstream 'localai' (configure it in "
        "PIXELGATE_OPENAI_COMPATIBLE_UPSTREAMS)"
    )
    with pytest.raises(ModelUnavailable):
        run(bare, catalog, "localai/dall-e-2")


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({"LocalAI": {"base_url": "http://x/v1", "models": ["m"]}}, "upstream name 'LocalAI'"),
        ({"localai": {"base_url": "http://x/v1", "models": []}}, "models"),
        ({"localai": {"models": ["m"]}}, "base_url"),
    ],
)
def test_a_bad_upstream_setting_names_the_variable(
    make_settings: Any, config: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match="PIXELGATE_OPENAI_COMPATIBLE_UPSTREAMS") as caught:
        make_settings(openai_compatible_upstreams=config)
    assert complaint in str(caught.value)


def _png(width: int, height: int) -> str:
    return base64.b64encode(image_bytes(width, height)).decode()
