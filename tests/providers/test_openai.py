"""The OpenAI adapter against a fake OpenAI Images API on loopback."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from pixelgate.catalog import Catalog
from pixelgate.errors import BackendError, Canceled, ModelUnavailable, Timeout, ValidationError
from pixelgate.providers import (
    CancelToken,
    ImageInput,
    ImageTask,
    ProviderRegistry,
    UpstreamState,
    UpstreamTask,
)
from pixelgate.providers.openai import OpenAIProvider
from tests.providers.conftest import OPENAI_KEY, Progress, options_for
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.openai import (
    EDITS,
    GENERATIONS,
    VARIATIONS,
    FakeOpenAI,
    openai_error,
)
from tests.providers.upstreams.server import Reply


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def provider(upstream: FakeOpenAI, make_settings: Any) -> OpenAIProvider:
    return OpenAIProvider.from_settings(
        make_settings(openai_api_key=OPENAI_KEY, openai_base_url=upstream.url)
    )


def generate(
    provider: OpenAIProvider,
    catalog: Catalog,
    model: str,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    **options: Any,
) -> list[Any]:
    spec = catalog.resolve(model)
    task = ImageTask(kind="generate", options=options_for(catalog, spec, **options))
    return provider.run(spec, task, progress=progress or Progress(), cancel=cancel or CancelToken())


def input_image(width: int = 64, height: int = 64) -> ImageInput:
    return ImageInput(image_bytes(width, height), "image/png", width, height)


def test_dall_e_3_generation_returns_the_bytes_and_the_revised_prompt(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog, progress: Progress
) -> None:
    images = generate(
        provider, catalog, "dall-e-3", progress=progress, size="1792x1024", quality="hd"
    )

    assert [image.data for image in images] == upstream.made
    assert images[0].revised_prompt == "A detailed rendering of a red fox in the snow"
    assert (images[0].width, images[0].height, images[0].content_type) == (
        1792, 1024, "image/png",
    )  # fmt: skip
    assert progress.calls == [(0, 1), (1, 1)]
    [request] = upstream.received
    assert request.path == GENERATIONS
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.json == {
        "model": "dall-e-3",
        "prompt": "a red fox in the snow",
        "n": 1,
        "size": "1792x1024",
        "quality": "hd",
        "style": "vivid",
        "response_format": "b64_json",
    }


def test_gpt_image_generation_sends_no_response_format_and_reads_base64(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    images = generate(provider, catalog, "gpt-image-1", n=2, size="1024x1536", output_format="webp")

    assert [image.data for image in images] == upstream.made
    assert [image.content_type for image in images] == ["image/webp", "image/webp"]
    assert all(image.revised_prompt is None for image in images)
    sent = upstream.received[0].json
    assert "response_format" not in sent
    assert sent["model"] == "gpt-image-1"
    assert (sent["n"], sent["size"], sent["output_format"]) == (2, "1024x1536", "webp")
    assert (sent["quality"], sent["background"]) == ("auto", "auto")


def test_url_results_are_fetched_without_the_key(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    raw = image_bytes(256, 256)
    url = upstream.host_file("/blob/result.png", raw, "image/png")
    upstream.script(
        GENERATIONS,
        Reply.json({"created": 1, "data": [{"url": url, "revised_prompt": "a fox, snowy"}]}),
    )

    [image] = generate(provider, catalog, "dall-e-2", size="256x256")

    assert image.data == raw
    assert image.revised_prompt == "a fox, snowy"
    [fetch] = upstream.requests_to("/blob/result.png")
    assert fetch.method == "GET"
    assert "authorization" not in fetch.headers


def test_edit_sends_image_and_mask_as_multipart_parts(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    spec = catalog.resolve("dall-e-2")
    image, mask = input_image(), input_image()
    task = ImageTask(
        kind="edit",
        options=options_for(catalog, spec, n=2, size="512x512"),
        image=image,
        mask=mask,
    )

    images = provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    assert [result.data for result in images] == upstream.made
    [request] = upstream.received
    assert request.path == EDITS
    assert request.content_type == "multipart/form-data"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    parts = request.parts
    assert (parts["image"].filename, parts["image"].content_type) == ("image.png", "image/png")
    sent_image = Image.open(io.BytesIO(parts["image"].data))
    assert (sent_image.format, sent_image.mode, sent_image.size) == ("PNG", "RGBA", (64, 64))
    original = Image.open(io.BytesIO(image.data)).convert("RGBA")
    assert sent_image.tobytes() == original.tobytes()
    assert (parts["mask"].filename, parts["mask"].content_type) == ("mask.png", "image/png")
    fields = {name: part.text for name, part in parts.items() if part.filename is None}
    assert fields == {
        "model": "dall-e-2",
        "prompt": "a red fox in the snow",
        "n": "2",
        "size": "512x512",
        "response_format": "b64_json",
    }


def test_variation_sends_the_image_without_a_prompt(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    spec = catalog.resolve("dall-e-2")
    task = ImageTask(
        kind="variation", options=options_for(catalog, spec, size="256x256"), image=input_image()
    )

    [image] = provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    assert (image.width, image.height) == (256, 256)
    [request] = upstream.received
    assert request.path == VARIATIONS
    assert "prompt" not in request.parts
    assert request.parts["image"].filename == "image.png"


def test_a_kind_the_model_lacks_is_refused_before_any_call(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    spec = catalog.resolve("dall-e-3")
    task = ImageTask(kind="edit", options=options_for(catalog, spec), image=input_image())

    with pytest.raises(ValidationError) as caught:
        provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    assert caught.value.param == "model"
    assert upstream.received == []


def test_429_is_retried_after_the_retry_after_delay(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    upstream.script(
        GENERATIONS,
        openai_error(
            429, "Rate limit reached", type="requests", code="rate_limit_exceeded", retry_after="1"
        ),
    )

    started = time.monotonic()
    [image] = generate(provider, catalog, "dall-e-2", size="256x256")

    # Retry-After (1 s) capped at the configured 0.2 s; the plain backoff would be ~1 ms
    assert time.monotonic() - started >= 0.18
    assert image.data == upstream.made[0]
    assert len(upstream.requests_to(GENERATIONS)) == 2


def test_500_is_a_backend_error_after_the_retries(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    failing = openai_error(500, "The server had an error", type="server_error")
    upstream.script(GENERATIONS, failing, failing, failing)

    with pytest.raises(BackendError) as caught:
        generate(provider, catalog, "dall-e-2")

    assert caught.value.message == (
        "The openai provider answered HTTP 500: The server had an error"
    )
    assert len(upstream.requests_to(GENERATIONS)) == 3  # one attempt and two retries


def test_a_connection_dropped_after_the_request_was_sent_is_not_sent_again(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    """Issue 19.3: the provider may have accepted (and billed) it."""
    upstream.script(GENERATIONS, Reply(drop=True))

    with pytest.raises(BackendError, match="may have been accepted, so it is not sent again"):
        generate(provider, catalog, "dall-e-2", size="256x256")

    assert len(upstream.requests_to(GENERATIONS)) == 1


def test_a_request_an_earlier_attempt_sent_is_not_sent_again(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    spec = catalog.resolve("dall-e-2")
    state = UpstreamState({0: UpstreamTask("openai")})  # a crash after sending, say
    task = ImageTask(kind="generate", options=options_for(catalog, spec), upstream=state)

    with pytest.raises(BackendError, match="earlier attempt of this job sent its request"):
        provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    assert upstream.requests_to(GENERATIONS) == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("content_policy_violation", "Your request was rejected by our safety system."),
        ("moderation_blocked", "Your request was rejected by the safety system."),
    ],
)
def test_moderation_is_a_backend_error_with_the_reason(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog, code: str, message: str
) -> None:
    upstream.script(
        GENERATIONS, openai_error(400, message, type="invalid_request_error", code=code)
    )

    with pytest.raises(BackendError) as caught:
        generate(provider, catalog, "dall-e-3")

    assert caught.value.message == f"OpenAI's safety system refused the request: {message}"
    assert len(upstream.received) == 1


def test_upstream_validation_is_a_validation_error_with_its_param(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    upstream.script(
        GENERATIONS,
        openai_error(
            400,
            "Invalid value for 'size': must be one of 256x256, 512x512, 1024x1024.",
            type="invalid_request_error",
            param="size",
            code="invalid_value",
        ),
    )

    with pytest.raises(ValidationError) as caught:
        generate(provider, catalog, "dall-e-2")

    assert caught.value.param == "size"
    assert caught.value.message.startswith("Invalid value for 'size'")


@pytest.mark.parametrize(
    "reply",
    [
        Reply.json({"created": 1}),
        Reply.json({"created": 1, "data": [{"b64_json": "not base64!"}]}),
        Reply.json({"created": 1, "data": [{"revised_prompt": "no image"}]}),
        Reply.json(
            {"created": 1, "data": [{"b64_json": base64.b64encode(b"plain text").decode()}]}
        ),
        Reply(200, b"<html>gateway</html>", {"content-type": "text/html"}),
    ],
    ids=["no-data", "bad-base64", "no-image", "not-an-image", "html"],
)
def test_a_malformed_answer_is_a_backend_error(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog, reply: Reply
) -> None:
    upstream.script(GENERATIONS, reply)

    with pytest.raises(BackendError, match="openai provider"):
        generate(provider, catalog, "dall-e-2")


def test_a_slow_upstream_trips_the_timeout_without_a_retry(
    upstream: FakeOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    provider = OpenAIProvider.from_settings(
        make_settings(
            openai_api_key=OPENAI_KEY,
            openai_base_url=upstream.url,
            provider_timeout_seconds=0.3,
        )
    )
    upstream.script(GENERATIONS, Reply(delay=1.5))

    started = time.monotonic()
    with pytest.raises(Timeout) as caught:
        generate(provider, catalog, "dall-e-2")

    assert time.monotonic() - started < 1.2
    assert caught.value.message == "The openai provider did not answer within 0.3 seconds"
    assert len(upstream.requests_to(GENERATIONS)) == 1


def test_a_refused_key_is_a_backend_error_that_does_not_show_the_key(
    upstream: FakeOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    wrong_key = "sk-wrong-key-abcdef"
    provider = OpenAIProvider.from_settings(
        make_settings(openai_api_key=wrong_key, openai_base_url=upstream.url)
    )

    with pytest.raises(BackendError) as caught:
        generate(provider, catalog, "dall-e-2")

    assert "refused pixelgate's API key" in caught.value.message
    assert "HTTP 401" in caught.value.message
    assert wrong_key not in caught.value.message
    assert upstream.received[0].headers["authorization"] == f"Bearer {wrong_key}"


def test_without_a_key_the_model_is_unavailable(
    upstream: FakeOpenAI, make_settings: Any, catalog: Catalog
) -> None:
    provider = OpenAIProvider.from_settings(make_settings(openai_base_url=upstream.url))
    spec = catalog.resolve("dall-e-3")

    reason = provider.unavailable_reason(spec)

    assert reason == "provider 'openai' has no API key (set PIXELGATE_OPENAI_API_KEY)"
    with pytest.raises(ModelUnavailable, match="PIXELGATE_OPENAI_API_KEY"):
        ProviderRegistry([provider]).for_model(spec)
    with pytest.raises(ModelUnavailable):
        generate(provider, catalog, "dall-e-3")
    assert upstream.received == []


def test_cancel_before_the_call_sends_nothing(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog, cancel: CancelToken
) -> None:
    cancel.cancel()

    with pytest.raises(Canceled):
        generate(provider, catalog, "dall-e-2", cancel=cancel)

    assert upstream.received == []


def test_the_key_never_reaches_the_logs(
    provider: OpenAIProvider,
    upstream: FakeOpenAI,
    catalog: Catalog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream.script(GENERATIONS, openai_error(503, "Overloaded", type="server_error"))

    with caplog.at_level(logging.DEBUG):
        generate(provider, catalog, "dall-e-2", size="256x256")

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Bearer ***" in logged or "'***'" in logged
    assert "answered 503" in logged
    assert OPENAI_KEY not in logged


# -- issue 19, item 9: inputs in OpenAI's convention ----------------------------------------


def grey_mask(size: tuple[int, int] = (64, 48)) -> ImageInput:
    """pixelgate's convention: white (repaint) on the left half, black (keep) on the right."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return ImageInput(buffer.getvalue(), "image/png", *size)


def test_the_mask_goes_as_rgba_transparent_where_openai_may_edit(
    provider: OpenAIProvider, upstream: FakeOpenAI, catalog: Catalog
) -> None:
    spec = catalog.resolve("gpt-image-1")
    jpeg = ImageInput(image_bytes(64, 48, "jpeg"), "image/jpeg", 64, 48)
    task = ImageTask(
        kind="edit", options=options_for(catalog, spec), image=jpeg, mask=grey_mask((64, 48))
    )

    provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    [request] = upstream.received
    sent_image = Image.open(io.BytesIO(request.parts["image"].data))
    assert (sent_image.format, sent_image.mode, sent_image.size) == ("PNG", "RGBA", (64, 48))
    assert request.parts["image"].content_type == "image/png"
    sent_mask = Image.open(io.BytesIO(request.parts["mask"].data))
    assert (sent_mask.format, sent_mask.mode, sent_mask.size) == ("PNG", "RGBA", (64, 48))
    alpha = sent_mask.getchannel("A")
    assert alpha.crop((0, 0, 32, 48)).getextrema() == (0, 0)  # white: OpenAI may edit
    assert alpha.crop((32, 0, 64, 48)).getextrema() == (255, 255)  # black: kept
