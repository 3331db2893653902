"""The Stability AI adapter against a fake Stability v2beta API on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.errors import (
    BackendError,
    Canceled,
    ModelUnavailable,
    MustProvideFile,
    PayloadTooLarge,
    Timeout,
    ValidationError,
)
from pixelgate.providers import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    UpstreamState,
    UpstreamTask,
)
from pixelgate.providers.stability import StabilityProvider
from pixelgate.providers.upstream import UpstreamClient
from tests.providers.conftest import STABILITY_KEY, Progress, options_for
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.server import Reply
from tests.providers.upstreams.stability import (
    CORE,
    ERASE,
    INPAINT,
    OUTPAINT,
    REMOVE_BACKGROUND,
    RESULTS,
    SEARCH_AND_REPLACE,
    UPSCALE_CREATIVE,
    UPSCALE_FAST,
    FakeStability,
    stability_error,
)

REMOVE_BACKGROUND_SPEC = ModelSpec(
    id="stability/remove-background",
    provider="stability",
    family="stability-core",
    source="remove-background",
    capabilities=("remove-background",),
)


@pytest.fixture
def upstream() -> Iterator[FakeStability]:
    with FakeStability(STABILITY_KEY) as fake:
        yield fake


@pytest.fixture
def provider(upstream: FakeStability, make_settings: Any) -> StabilityProvider:
    return StabilityProvider.from_settings(
        make_settings(stability_api_key=STABILITY_KEY, stability_base_url=upstream.url)
    )


def run(
    provider: StabilityProvider,
    catalog: Catalog,
    *,
    spec: ModelSpec | None = None,
    kind: Any = "generate",
    image: ImageInput | None = None,
    mask: ImageInput | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = spec or catalog.resolve("stable-image-core")
    task = ImageTask(
        kind=kind, options=options_for(catalog, spec, **options), image=image, mask=mask
    )
    return provider.run(spec, task, progress=progress or Progress(), cancel=CancelToken())


def photo(width: int = 96, height: int = 64) -> ImageInput:
    return ImageInput(image_bytes(width, height, "jpeg"), "image/jpeg", width, height)


def test_core_generation_returns_the_raw_bytes_and_the_seed(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog, progress: Progress
) -> None:
    [image] = run(
        provider,
        catalog,
        progress=progress,
        aspect_ratio="16:9",
        negative_prompt="blurry",
        seed=42,
        style_preset="photographic",
        output_format="webp",
    )

    assert image.data == upstream.made[0]
    assert (image.seed, image.content_type) == (42, "image/webp")
    assert (image.width, image.height) == (1344, 768)
    assert progress.calls == [(0, 1), (1, 1)]
    [request] = upstream.received
    assert request.path == CORE
    assert request.content_type == "multipart/form-data"
    assert request.headers["authorization"] == f"Bearer {STABILITY_KEY}"
    assert request.headers["accept"] == "image/*"
    assert {name: part.text for name, part in request.parts.items()} == {
        "prompt": "a red fox in the snow",
        "aspect_ratio": "16:9",
        "negative_prompt": "blurry",
        "seed": "42",
        "style_preset": "photographic",
        "output_format": "webp",
    }
    assert all(part.filename is None for part in request.parts.values())


def test_unset_options_are_left_out_and_the_upstream_seed_is_kept(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    [image] = run(provider, catalog)

    assert image.seed == 1000  # the fake's first random seed, read from the `seed` header
    sent = set(upstream.received[0].parts)
    assert sent == {"prompt", "aspect_ratio", "output_format"}


def test_json_answers_are_read_too(
    upstream: FakeStability, make_settings: Any, catalog: Catalog
) -> None:
    settings = make_settings(stability_base_url=upstream.url)
    provider = StabilityProvider(
        api_key=SecretStr(STABILITY_KEY),
        base_url=upstream.url,
        http=UpstreamClient.from_settings("stability", settings),
        accept="application/json",
    )

    [image] = run(provider, catalog, seed=7)

    assert (image.data, image.seed) == (upstream.made[0], 7)
    assert upstream.received[0].headers["accept"] == "application/json"


def test_remove_background_returns_a_transparent_png(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    [result] = run(
        provider, catalog, spec=REMOVE_BACKGROUND_SPEC, kind="remove-background", image=photo()
    )

    assert result.data == upstream.made[0]
    assert (result.content_type, result.width, result.height) == ("image/png", 96, 64)
    [request] = upstream.received
    assert request.path == REMOVE_BACKGROUND
    assert set(request.parts) == {"image", "output_format"}
    assert request.parts["output_format"].text == "png"


def test_remove_background_without_an_image_is_must_provide_file(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    with pytest.raises(MustProvideFile):
        run(provider, catalog, spec=REMOVE_BACKGROUND_SPEC, kind="remove-background")

    assert upstream.received == []


def test_429_is_retried_after_the_retry_after_delay(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(
        CORE,
        stability_error(
            429, "rate_limit_exceeded", "You have exceeded the rate limit", retry_after="1"
        ),
    )

    started = time.monotonic()
    [image] = run(provider, catalog)

    assert time.monotonic() - started >= 0.18
    assert image.data == upstream.made[0]
    assert len(upstream.requests_to(CORE)) == 2


def test_500_is_a_backend_error_after_the_retries(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    failing = stability_error(500, "internal_error", "An unexpected server error occurred")
    upstream.script(CORE, failing, failing, failing)

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == (
        "The stability provider answered HTTP 500: An unexpected server error occurred"
    )
    assert len(upstream.requests_to(CORE)) == 3


def test_content_moderation_is_a_backend_error_with_the_reason(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(
        CORE,
        stability_error(
            403,
            "content_moderation",
            "Your request was flagged by our content moderation system, as a result your "
            "request was denied and you were not charged.",
        ),
    )

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message.startswith(
        "Stability AI's content moderation refused the request: Your request was flagged"
    )
    assert len(upstream.received) == 1


@pytest.mark.parametrize("accept", ["image/*", "application/json"])
def test_a_filtered_result_is_a_backend_error(
    upstream: FakeStability, make_settings: Any, catalog: Catalog, accept: Any
) -> None:
    upstream.finish_reason = "CONTENT_FILTERED"
    provider = StabilityProvider(
        api_key=SecretStr(STABILITY_KEY),
        base_url=upstream.url,
        http=UpstreamClient.from_settings("stability", make_settings()),
        accept=accept,
    )

    with pytest.raises(BackendError, match="finish_reason CONTENT_FILTERED"):
        run(provider, catalog)


def test_upstream_validation_is_a_validation_error(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(
        CORE, stability_error(400, "bad_request", "aspect_ratio: must be one of 16:9, 1:1")
    )

    with pytest.raises(ValidationError) as caught:
        run(provider, catalog)

    assert caught.value.message == "aspect_ratio: must be one of 16:9, 1:1"


def test_a_too_large_input_is_payload_too_large(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(
        REMOVE_BACKGROUND,
        stability_error(413, "payload_too_large", "body: payloads cannot be larger than 10MiB"),
    )

    with pytest.raises(PayloadTooLarge, match="10MiB"):
        run(provider, catalog, spec=REMOVE_BACKGROUND_SPEC, kind="remove-background", image=photo())


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"not an image", {"content-type": "image/png", "finish-reason": "SUCCESS"}),
        Reply.json({"finish_reason": "SUCCESS", "seed": 1}),
        Reply(200, b"{}", {"content-type": "text/plain"}),
    ],
    ids=["bad-bytes", "json-without-image", "wrong-type"],
)
def test_a_malformed_answer_is_a_backend_error(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog, reply: Reply
) -> None:
    upstream.script(CORE, reply)

    with pytest.raises(BackendError, match="stability provider"):
        run(provider, catalog)


def test_a_slow_upstream_trips_the_timeout(
    upstream: FakeStability, make_settings: Any, catalog: Catalog
) -> None:
    provider = StabilityProvider.from_settings(
        make_settings(
            stability_api_key=STABILITY_KEY,
            stability_base_url=upstream.url,
            provider_timeout_seconds=0.3,
        )
    )
    upstream.script(CORE, Reply(delay=1.5))

    with pytest.raises(Timeout):
        run(provider, catalog)

    assert len(upstream.requests_to(CORE)) == 1


def test_a_refused_key_is_a_backend_error(
    upstream: FakeStability, make_settings: Any, catalog: Catalog
) -> None:
    provider = StabilityProvider.from_settings(
        make_settings(stability_api_key="sk-not-this-one", stability_base_url=upstream.url)
    )

    with pytest.raises(BackendError, match=r"refused pixelgate's API key .*HTTP 401") as caught:
        run(provider, catalog)

    assert "sk-not-this-one" not in caught.value.message


def test_without_a_key_the_model_is_unavailable(
    upstream: FakeStability, make_settings: Any, catalog: Catalog
) -> None:
    provider = StabilityProvider.from_settings(make_settings(stability_base_url=upstream.url))

    assert provider.unavailable_reason(catalog.resolve("stable-image-core")) == (
        "provider 'stability' has no API key (set PIXELGATE_STABILITY_API_KEY)"
    )
    with pytest.raises(ModelUnavailable):
        run(provider, catalog)
    assert upstream.received == []


# -- issue 19, item 10: `n` images are `n` calls --------------------------------------------


def test_n_images_are_n_calls_with_consecutive_seeds(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog, progress: Progress
) -> None:
    images = run(provider, catalog, progress=progress, n=3, seed=10)

    assert [image.seed for image in images] == [10, 11, 12]
    assert [image.data for image in images] == upstream.made
    assert [request.parts["seed"].text for request in upstream.requests_to(CORE)] == [
        "10",
        "11",
        "12",
    ]
    assert progress.calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_a_failed_call_of_several_leaves_the_images_of_the_others(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(CORE, stability_error(403, "content_moderation", "flagged"))

    images = run(provider, catalog, n=3, seed=10)

    assert [image.seed for image in images] == [11, 12]  # the job is billed for two, refunds one
    assert len(upstream.requests_to(CORE)) == 3


def test_when_every_call_fails_the_first_failure_is_raised(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(CORE, *[stability_error(403, "content_moderation", "flagged")] * 2)
    with pytest.raises(BackendError, match="content moderation"):
        run(provider, catalog, n=2)


def test_a_request_the_upstream_refuses_is_not_sent_again(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(CORE, stability_error(400, "bad_request", "prompt: too odd"))
    with pytest.raises(ValidationError, match="too odd"):
        run(provider, catalog, n=3)
    assert len(upstream.requests_to(CORE)) == 1


# -- issue 19, items 3 and 10 together: each of the `n` calls is sent once per job ----------


def test_a_later_attempt_sends_only_the_images_no_attempt_sent(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    """Image 0's call was sent by an earlier attempt (and may be billed): it is not sent
    again and that image is refunded; image 1's, never sent, is."""
    spec = catalog.resolve("stable-image-core")
    kept: list[Mapping[int, UpstreamTask]] = []
    state = UpstreamState({0: UpstreamTask("stability")}, keep=kept.append)
    task = ImageTask(
        kind="generate", options=options_for(catalog, spec, n=2, seed=10), upstream=state
    )

    images = provider.run(spec, task, progress=Progress(), cancel=CancelToken())

    assert [image.seed for image in images] == [11]
    assert [request.parts["seed"].text for request in upstream.requests_to(CORE)] == ["11"]
    assert sorted(kept[-1]) == [0, 1]


# -- issue 23, item 7: the edit endpoints as catalog models ----------------------------------


def edit(
    provider: StabilityProvider,
    catalog: Catalog,
    model: str,
    *,
    image: ImageInput | None = None,
    mask: ImageInput | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    """An edit with exactly `options` (no prompt added), as the service validated them."""
    spec = catalog.resolve(model)
    task = ImageTask(
        kind="edit",
        options=catalog.validate_options(spec, options, task="edit"),
        image=image or photo(),
        mask=mask,
    )
    return provider.run(spec, task, progress=Progress(), cancel=CancelToken())


def a_mask(width: int = 96, height: int = 64) -> ImageInput:
    return ImageInput(image_bytes(width, height, color=(255, 255, 255)), "image/png", width, height)


def with_a_hole(width: int = 96, height: int = 64) -> ImageInput:
    """A PNG whose transparent pixels mark the area to edit (Stability reads its alpha)."""
    return ImageInput(image_bytes(width, height, color=(9, 9, 9, 0)), "image/png", width, height)


def fields_of(upstream: FakeStability) -> dict[str, str]:
    [request] = upstream.received
    return {name: part.text for name, part in request.parts.items() if part.filename is None}


def test_inpaint_sends_the_image_the_mask_and_every_option(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    image, mask = photo(), a_mask()

    [result] = edit(
        provider, catalog, "stability/inpaint", image=image, mask=mask,
        prompt="a red fox", negative_prompt="blurry", grow_mask=12, seed=42,
        style_preset="photographic", output_format="webp",
    )  # fmt: skip

    assert (result.data, result.seed) == (upstream.made[0], 42)
    assert (result.content_type, result.width, result.height) == ("image/webp", 96, 64)
    [request] = upstream.received
    assert request.path == INPAINT
    assert request.headers["authorization"] == f"Bearer {STABILITY_KEY}"
    assert request.headers["accept"] == "image/*"
    assert request.content_type == "multipart/form-data"
    assert (request.parts["image"].filename, request.parts["image"].data) == (
        "image.jpg",
        image.data,
    )
    assert request.parts["image"].content_type == "image/jpeg"
    assert (request.parts["mask"].filename, request.parts["mask"].data) == ("mask.png", mask.data)
    assert fields_of(upstream) == {
        "prompt": "a red fox",
        "negative_prompt": "blurry",
        "grow_mask": "12",
        "seed": "42",
        "style_preset": "photographic",
        "output_format": "webp",
    }


@pytest.mark.parametrize("model", ["stability/inpaint", "stability/erase"])
def test_without_a_mask_the_images_transparency_marks_the_area(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog, model: str
) -> None:
    options: dict[str, Any] = {"prompt": "grass"} if model == "stability/inpaint" else {}

    [result] = edit(provider, catalog, model, image=with_a_hole(), seed=3, **options)

    assert result.data == upstream.made[0]
    [request] = upstream.received
    assert set(request.parts) == {"image", "seed", "output_format", *options}


def test_the_masked_edits_read_the_mask_from_transparency_by_the_catalog(
    catalog: Catalog,
) -> None:
    """Without a mask, inpaint and erase repaint the image's transparent pixels: the catalog
    says so, and the service refuses an opaque image at submit (tests/api/test_stability_edit)."""
    reads_alpha = {
        spec.id for spec in catalog if spec.provider == "stability" and
        spec.limits.transparency_as_mask
    }  # fmt: skip

    assert reads_alpha == {"stability/inpaint", "stability/erase"}


def test_outpaint_sends_the_sides_and_answers_a_larger_image(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    [result] = edit(
        provider, catalog, "stability/outpaint", image=photo(96, 64),
        left=100, down=20, creativity=0.7, prompt="more sea", seed=5, output_format="jpeg",
    )  # fmt: skip

    assert (result.width, result.height) == (196, 84)
    assert result.content_type == "image/jpeg"
    assert upstream.received[0].path == OUTPAINT
    assert "mask" not in upstream.received[0].parts
    assert fields_of(upstream) == {
        "prompt": "more sea",
        "left": "100",
        "right": "0",
        "up": "0",
        "down": "20",
        "creativity": "0.7",
        "seed": "5",
        "output_format": "jpeg",
    }


def test_outpaint_needs_no_prompt(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    [result] = edit(provider, catalog, "stability/outpaint", up=8)

    assert (result.width, result.height) == (96, 72)
    assert "prompt" not in fields_of(upstream)


def test_search_and_replace_sends_both_prompts_and_no_mask(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    [result] = edit(
        provider, catalog, "stability/search-and-replace",
        prompt="a golden retriever", search_prompt="the cat", negative_prompt="blurry",
        grow_mask=3, seed=8,
    )  # fmt: skip

    assert (result.width, result.height) == (96, 64)
    assert upstream.received[0].path == SEARCH_AND_REPLACE
    assert fields_of(upstream) == {
        "prompt": "a golden retriever",
        "search_prompt": "the cat",
        "negative_prompt": "blurry",
        "grow_mask": "3",
        "seed": "8",
        "output_format": "png",
    }


def test_erase_sends_the_mask_and_no_prompt(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    mask = a_mask()

    [result] = edit(provider, catalog, "stability/erase", mask=mask, grow_mask=0, seed=1)

    assert result.data == upstream.made[0]
    [request] = upstream.received
    assert request.path == ERASE
    assert request.parts["mask"].data == mask.data
    assert fields_of(upstream) == {"grow_mask": "0", "seed": "1", "output_format": "png"}


def test_n_edits_are_n_calls_with_consecutive_seeds(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    images = edit(provider, catalog, "stability/erase", mask=a_mask(), n=2, seed=20)

    assert [image.seed for image in images] == [20, 21]
    assert [r.parts["seed"].text for r in upstream.requests_to(ERASE)] == ["20", "21"]


@pytest.mark.parametrize(
    ("model", "options", "param", "words"),
    [
        ("stability/outpaint", {}, "left", "all 0"),
        ("stability/outpaint", {"left": 2001}, "left", "2000"),
        ("stability/outpaint", {"up": 5, "creativity": 1.5}, "creativity", "1"),
        ("stability/search-and-replace", {"prompt": "a dog"}, "search_prompt", "Missing"),
        ("stability/search-and-replace", {"prompt": "a", "search_prompt": " "}, "search_prompt",
         "empty"),
        ("stability/inpaint", {"prompt": "a", "grow_mask": 101}, "grow_mask", "100"),
        ("stability/inpaint", {}, "prompt", "Missing"),
        ("stability/erase", {"style_preset": "anime"}, "style_preset", "Unknown option"),
    ],
)  # fmt: skip
def test_bad_edit_options_name_the_parameter(
    catalog: Catalog, model: str, options: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        catalog.validate_options(catalog.resolve(model), options, task="edit")

    assert caught.value.param == param
    assert words in caught.value.message


@dataclass(frozen=True)
class EditCall:
    model: str
    path: str
    options: dict[str, Any]

    def send(self, provider: StabilityProvider, catalog: Catalog) -> list[GeneratedImage]:
        masked = self.model in ("stability/inpaint", "stability/erase")
        return edit(
            provider, catalog, self.model, mask=a_mask() if masked else None, **self.options
        )


EDIT_CALLS = [
    EditCall("stability/inpaint", INPAINT, {"prompt": "grass"}),
    EditCall("stability/outpaint", OUTPAINT, {"right": 32}),
    EditCall(
        "stability/search-and-replace", SEARCH_AND_REPLACE, {"prompt": "a", "search_prompt": "b"}
    ),
    EditCall("stability/erase", ERASE, {}),
]


@pytest.fixture(params=EDIT_CALLS, ids=lambda call: call.model)
def call(request: pytest.FixtureRequest) -> EditCall:
    chosen: EditCall = request.param
    return chosen


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (stability_error(400, "bad_request", "image: too small"), ValidationError, "too small"),
        (stability_error(403, "content_moderation", "flagged"), BackendError, "moderation"),
        (stability_error(413, "payload_too_large", "body: 10MiB"), PayloadTooLarge, "10MiB"),
        (stability_error(401, "unauthorized", "bad key"), BackendError, "refused pixelgate's"),
    ],
    ids=["400", "403-moderation", "413", "401"],
)
def test_edit_errors_map_to_pixelgate_errors(
    provider: StabilityProvider,
    upstream: FakeStability,
    catalog: Catalog,
    call: EditCall,
    reply: Reply,
    error: type[Exception],
    words: str,
) -> None:
    upstream.script(call.path, reply)

    with pytest.raises(error, match=words):
        call.send(provider, catalog)

    assert len(upstream.requests_to(call.path)) == 1


def test_an_edit_is_retried_after_429_and_fails_after_500s(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog, call: EditCall
) -> None:
    limited = stability_error(429, "rate_limit_exceeded", "slow down", retry_after="0")
    upstream.script(call.path, limited)
    [image] = call.send(provider, catalog)
    assert image.data == upstream.made[-1]
    assert len(upstream.requests_to(call.path)) == 2

    failing = stability_error(500, "internal_error", "An unexpected server error occurred")
    upstream.script(call.path, failing, failing, failing)
    with pytest.raises(BackendError, match="HTTP 500"):
        call.send(provider, catalog)
    assert len(upstream.requests_to(call.path)) == 5


def test_a_filtered_edit_is_the_content_policy_error(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog, call: EditCall
) -> None:
    upstream.finish_reason = "CONTENT_FILTERED"

    with pytest.raises(BackendError, match="safety filter"):
        call.send(provider, catalog)

    assert len(upstream.requests_to(call.path)) == 1


# -- issue 23, item 6: the upscale endpoints ---------------------------------------------------


def upscale(
    provider: StabilityProvider,
    catalog: Catalog,
    model: str,
    *,
    state: UpstreamState | None = None,
    cancel: CancelToken | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    task = ImageTask(
        kind="upscale",
        options=catalog.validate_options(spec, options, task="upscale"),
        image=photo(64, 64),
        upstream=state or UpstreamState(),
    )
    return provider.run(spec, task, progress=Progress(), cancel=cancel or CancelToken())


@pytest.fixture
def polling(upstream: FakeStability, make_settings: Any) -> StabilityProvider:
    """The provider, polling every few milliseconds for at most a second."""
    return StabilityProvider.from_settings(
        make_settings(
            stability_api_key=STABILITY_KEY,
            stability_base_url=upstream.url,
            stability_poll_interval_seconds=0.01,
            stability_poll_timeout_seconds=1.0,
        )
    )


def test_fast_upscale_sends_the_image_and_format_only(
    provider: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    [image] = upscale(provider, catalog, "stability/upscale-fast", output_format="webp")

    assert (image.width, image.height, image.content_type) == (256, 256, "image/webp")
    assert fields_of(upstream) == {"output_format": "webp"}
    assert upstream.received[0].path == UPSCALE_FAST


def test_creative_upscale_notes_its_id_and_polls_until_ready(
    polling: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    kept: list[Mapping[int, UpstreamTask]] = []

    [image] = upscale(
        polling,
        catalog,
        "stability/upscale-creative",
        state=UpstreamState(keep=kept.append),
        prompt="a castle",
        creativity=0.2,
        seed=9,
    )

    assert (image.width, image.height, image.seed) == (2048, 2048, 9)
    [started] = upstream.requests_to(UPSCALE_CREATIVE)
    assert started.headers["accept"] == "application/json"
    result_id = kept[-1][0].task_id
    assert result_id is not None and kept[-1][0].deadline is not None
    polls = upstream.requests_to(RESULTS + result_id)
    assert len(polls) == 3 and all(p.method == "GET" for p in polls)


def test_a_later_attempt_polls_the_creative_upscale_again_without_starting_another(
    polling: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    kept: list[Mapping[int, UpstreamTask]] = []
    upscale(
        polling,
        catalog,
        "stability/upscale-creative",
        state=UpstreamState(keep=kept.append),
        prompt="a castle",
    )
    upstream.received.clear()

    [again] = upscale(
        polling,
        catalog,
        "stability/upscale-creative",
        state=UpstreamState(dict(kept[-1]), attempt=2),
        prompt="a castle",
    )

    assert upstream.requests_to(UPSCALE_CREATIVE) == []  # paid for once
    assert [request.method for request in upstream.received] == ["GET"]
    assert again.width == 2048


def test_an_upscale_never_ready_times_out_and_is_not_started_again(
    polling: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.polls_before_ready = 10_000

    with pytest.raises(Timeout, match="Upscaling timed out"):
        upscale(polling, catalog, "stability/upscale-creative", prompt="a castle")
    assert len(upstream.requests_to(UPSCALE_CREATIVE)) == 1


def test_a_cancel_stops_the_polling(
    polling: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.polls_before_ready = 10_000
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()
    started = time.monotonic()

    with pytest.raises(Canceled):
        upscale(polling, catalog, "stability/upscale-creative", prompt="x", cancel=cancel)
    assert time.monotonic() - started < 1.0


def test_a_result_answered_as_json_is_read(
    upstream: FakeStability, make_settings: Any, catalog: Catalog
) -> None:
    own = make_settings(
        stability_api_key=STABILITY_KEY,
        stability_base_url=upstream.url,
        stability_poll_interval_seconds=0.01,
    )
    provider = StabilityProvider(
        api_key=SecretStr(STABILITY_KEY),
        base_url=upstream.url,
        http=UpstreamClient.from_settings("stability", own, base_url=upstream.url),
        accept="application/json",
        poll_interval_seconds=0.01,
    )

    [image] = upscale(provider, catalog, "stability/upscale-creative", prompt="a castle", seed=4)

    assert (image.width, image.seed) == (2048, 4)


def test_an_unusable_result_id_is_refused_before_any_poll(
    polling: StabilityProvider, upstream: FakeStability, catalog: Catalog
) -> None:
    upstream.script(UPSCALE_CREATIVE, Reply.json({"id": "../../v2beta/account"}))

    with pytest.raises(BackendError, match="no usable `id`"):
        upscale(polling, catalog, "stability/upscale-creative", prompt="a castle")
    assert [request.method for request in upstream.received] == ["POST"]
