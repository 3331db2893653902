"""The Azure OpenAI adapter against a fake Azure OpenAI resource on loopback: deployment paths,
`api-version`, the `api-key` header or an Entra token, and OpenAI's request and answer shapes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from pixelgate.catalog import Catalog
from pixelgate.errors import BackendError, Canceled, ModelUnavailable, ValidationError
from pixelgate.providers import CancelToken, GeneratedImage, ImageInput, ImageTask
from pixelgate.providers.azure_openai import AzureOpenAIProvider
from tests.providers.conftest import Progress, options_for
from tests.providers.upstreams.azure_openai import API_VERSION, FakeAzureOpenAI, deployment_path
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.openai import openai_error

AZURE_KEY = "azure-test-key-0123456789"
ENTRA_TOKEN = "eyJ0eXAiOiJKV1Qi.entra.test"
DEPLOYMENTS = {"dalle3-prod": "dall-e-3", "images-gpt": "gpt-image-1"}
DALLE = deployment_path("dalle3-prod", "generations")
GPT_IMAGE = deployment_path("images-gpt", "generations")
GPT_IMAGE_EDITS = deployment_path("images-gpt", "edits")


@pytest.fixture
def upstream() -> Iterator[FakeAzureOpenAI]:
    with FakeAzureOpenAI(key=AZURE_KEY, entra_token=ENTRA_TOKEN, deployments=DEPLOYMENTS) as fake:
        yield fake


def azure_settings(upstream: FakeAzureOpenAI, **more: Any) -> dict[str, Any]:
    return {
        "azure_openai_endpoint": upstream.url + "/",
        "azure_openai_api_key": AZURE_KEY,
        "azure_openai_deployments": {"dall-e-3": "dalle3-prod", "azure/gpt-image-1": "images-gpt"},
        **more,
    }


@pytest.fixture
def provider(upstream: FakeAzureOpenAI, make_settings: Any) -> AzureOpenAIProvider:
    return AzureOpenAIProvider.from_settings(make_settings(**azure_settings(upstream)))


def run(
    provider: AzureOpenAIProvider,
    catalog: Catalog,
    model: str,
    *,
    kind: str = "generate",
    image: ImageInput | None = None,
    mask: ImageInput | None = None,
    cancel: CancelToken | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    options_ = options_for(catalog, spec, **options)
    task = ImageTask(kind=kind, options=options_, image=image, mask=mask)  # type: ignore[arg-type]
    return provider.run(spec, task, progress=Progress(), cancel=cancel or CancelToken())


def test_dall_e_3_goes_to_its_deployment_with_the_api_key(
    provider: AzureOpenAIProvider, upstream: FakeAzureOpenAI, catalog: Catalog
) -> None:
    [image] = run(provider, catalog, "azure-dall-e-3", size="1024x1792", quality="hd", user="u1")

    [request] = upstream.received
    assert (request.path, request.query) == (DALLE, f"api-version={API_VERSION}")
    assert request.headers["api-key"] == AZURE_KEY
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "dall-e-3",
        "prompt": "a red fox in the snow",
        "n": 1,
        "size": "1024x1792",
        "quality": "hd",
        "style": "vivid",
        "response_format": "b64_json",
        "user": "u1",
    }
    assert image.data == upstream.made[0]
    assert (image.width, image.height) == (1024, 1792)
    assert image.revised_prompt == "A detailed rendering of a red fox in the snow"


def test_gpt_image_1_with_an_entra_token(
    upstream: FakeAzureOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    provider = AzureOpenAIProvider.from_settings(
        make_settings(
            **azure_settings(
                upstream, azure_openai_api_key=None, azure_openai_entra_token=ENTRA_TOKEN
            )
        )
    )
    images = run(provider, catalog, "azure/gpt-image-1", n=2, quality="low", size="1024x1024")

    [request] = upstream.received
    assert request.path == GPT_IMAGE
    assert request.headers["authorization"] == f"Bearer {ENTRA_TOKEN}"
    assert "api-key" not in request.headers
    assert request.json["quality"] == "low" and "response_format" not in request.json
    assert [image.data for image in images] == upstream.made


def test_gpt_image_1_edit_sends_openai_multipart_to_the_edits_path(
    provider: AzureOpenAIProvider, upstream: FakeAzureOpenAI, catalog: Catalog
) -> None:
    image = ImageInput(image_bytes(32, 32), "image/png", 32, 32)
    mask = ImageInput(image_bytes(32, 32, color=(255, 255, 255)), "image/png", 32, 32)
    [edited] = run(provider, catalog, "azure-gpt-image-1", kind="edit", image=image, mask=mask)

    [request] = upstream.received
    assert request.path == GPT_IMAGE_EDITS and request.query == f"api-version={API_VERSION}"
    assert request.content_type == "multipart/form-data"
    assert request.parts["prompt"].text == "a red fox in the snow"
    assert request.parts["model"].text == "gpt-image-1"
    assert request.parts["image"].filename == "image.png"
    assert request.parts["mask"].content_type == "image/png"
    assert edited.data == upstream.made[0]


def test_the_content_filter_is_a_backend_error(
    provider: AzureOpenAIProvider, upstream: FakeAzureOpenAI, catalog: Catalog
) -> None:
    upstream.script(
        DALLE,
        openai_error(
            400,
            "Your request was rejected as a result of our safety system.",
            type="invalid_request_error",
            code="content_policy_violation",
        ),
    )
    with pytest.raises(BackendError, match="safety system refused"):
        run(provider, catalog, "azure-dall-e-3")


def test_a_bad_parameter_is_the_callers_input(
    provider: AzureOpenAIProvider, upstream: FakeAzureOpenAI, catalog: Catalog
) -> None:
    upstream.script(
        DALLE,
        openai_error(400, "Invalid size", type="invalid_request_error", param="size"),
    )
    with pytest.raises(ValidationError) as caught:
        run(provider, catalog, "azure-dall-e-3")
    assert caught.value.param == "size"


def test_429_waits_for_retry_after_and_5xx_gives_up_after_the_retries(
    provider: AzureOpenAIProvider, upstream: FakeAzureOpenAI, catalog: Catalog
) -> None:
    upstream.script(
        DALLE,
        openai_error(429, "Rate limit", type="requests", code="429", retry_after="1"),
    )
    started = time.monotonic()
    run(provider, catalog, "azure-dall-e-3")
    assert time.monotonic() - started >= 0.18
    assert len(upstream.requests_to(DALLE)) == 2

    failing = openai_error(500, "Internal server error", type="server_error")
    upstream.script(DALLE, failing, failing, failing)
    with pytest.raises(BackendError) as caught:
        run(provider, catalog, "azure-dall-e-3")
    assert caught.value.message == (
        "The azure-openai provider answered HTTP 500: Internal server error"
    )
    assert len(upstream.requests_to(DALLE)) == 5


def test_a_refused_key_does_not_show_it(
    upstream: FakeAzureOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    provider = AzureOpenAIProvider.from_settings(
        make_settings(**azure_settings(upstream, azure_openai_api_key="wrong-azure-key"))
    )
    with pytest.raises(BackendError) as caught:
        run(provider, catalog, "azure-dall-e-3")
    assert "refused pixelgate's API key" in caught.value.message
    assert "wrong-azure-key" not in caught.value.message


def test_each_missing_setting_is_named(
    upstream: FakeAzureOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    dalle = catalog.resolve("azure-dall-e-3")

    def reason(**overrides: Any) -> str | None:
        settings = make_settings(**(azure_settings(upstream) | overrides))
        return AzureOpenAIProvider.from_settings(settings).unavailable_reason(dalle)

    assert reason() is None
    assert reason(azure_openai_endpoint=None) == (
        "provider 'azure-openai' has no endpoint (set PIXELGATE_AZURE_OPENAI_ENDPOINT)"
    )
    assert reason(azure_openai_api_key=None) == (
        "provider 'azure-openai' has no API key (set PIXELGATE_AZURE_OPENAI_API_KEY or "
        "PIXELGATE_AZURE_OPENAI_ENTRA_TOKEN)"
    )
    assert reason(azure_openai_deployments={}) == (
        "provider 'azure-openai' has no deployment of dall-e-3 (set "
        'PIXELGATE_AZURE_OPENAI_DEPLOYMENTS, e.g. {"dall-e-3": "<deployment>"})'
    )
    provider = AzureOpenAIProvider.from_settings(
        make_settings(**azure_settings(upstream, azure_openai_deployments={}))
    )
    with pytest.raises(ModelUnavailable):
        run(provider, catalog, "azure-dall-e-3")
    assert upstream.received == []


def test_deployments_come_from_the_environment_as_json(
    upstream: FakeAzureOpenAI,
    make_settings: Any,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXELGATE_AZURE_OPENAI_DEPLOYMENTS", '{"gpt-image-1": "images-gpt"}')
    settings = make_settings(azure_openai_endpoint=upstream.url, azure_openai_api_key=AZURE_KEY)
    provider = AzureOpenAIProvider.from_settings(settings)
    run(provider, catalog, "azure-gpt-image-1")
    assert upstream.received[0].path == GPT_IMAGE


def test_cancel_before_the_call_sends_nothing(
    provider: AzureOpenAIProvider, upstream: FakeAzureOpenAI, catalog: Catalog
) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Canceled):
        run(provider, catalog, "azure-dall-e-3", cancel=cancel)
    assert upstream.received == []
