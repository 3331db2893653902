"""The fal.ai adapter against a fake fal queue API on loopback: submit, status, result, cancel."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from pixelgate.catalog import OPTION_FAMILIES, Catalog
from pixelgate.errors import (
    BackendError,
    Canceled,
    ModelUnavailable,
    ProviderTimeout,
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
from pixelgate.providers.fal import FalProvider
from pixelgate.service.edit_sizes import plan_aspect_ratio
from tests.providers.conftest import Progress, options_for
from tests.providers.upstreams.fal import FakeFal, Plan, unprocessable
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.server import Received, Reply

FAL_KEY = "fal-test-key-0123456789"
PRO = "fal-ai/flux-pro/v1.1"
ULTRA = "fal-ai/flux-pro/v1.1-ultra"
KONTEXT = "fal-ai/flux-pro/kontext"
DEV, SCHNELL = "fal-ai/flux/dev", "fal-ai/flux/schnell"
ENDPOINTS = (PRO, ULTRA, KONTEXT, f"{KONTEXT}/text-to-image", DEV, SCHNELL)


@pytest.fixture
def upstream() -> Iterator[FakeFal]:
    with FakeFal(FAL_KEY, ENDPOINTS) as fake:
        yield fake


def fal_settings(make_settings: Any, upstream: FakeFal, **overrides: Any) -> Any:
    values = {
        "fal_api_key": FAL_KEY,
        "fal_base_url": upstream.url,
        "fal_poll_interval_seconds": 0.01,
        "fal_poll_timeout_seconds": 5.0,
    }
    return make_settings(**(values | overrides))


@pytest.fixture
def provider(upstream: FakeFal, make_settings: Any) -> FalProvider:
    return FalProvider.from_settings(fal_settings(make_settings, upstream))


def run(
    provider: FalProvider,
    catalog: Catalog,
    model: str = "fal/flux-pro-v1.1",
    *,
    kind: Any = "generate",
    image: ImageInput | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    upstream: UpstreamState | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    task = ImageTask(
        kind=kind,
        options=options_for(catalog, spec, **options),
        image=image,
        upstream=upstream or UpstreamState(),
    )
    return provider.run(spec, task, progress=progress or Progress(), cancel=cancel or CancelToken())


def submits(upstream: FakeFal, endpoint: str = PRO) -> list[Received]:
    return upstream.requests_to(f"/{endpoint}")


def calls(upstream: FakeFal, suffix: str, method: str = "GET") -> list[Received]:
    return [r for r in upstream.received if r.method == method and r.path.endswith(suffix)]


def test_a_request_is_submitted_followed_through_the_queue_and_its_images_fetched(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog, progress: Progress
) -> None:
    upstream.plan = Plan(queued_polls=2, running_polls=2)

    images = run(
        provider,
        catalog,
        progress=progress,
        n=2,
        seed=99,
        image_size="square_hd",
        safety_tolerance=5,
        enhance_prompt=True,
        output_format="png",
    )

    assert [image.data for image in images] == upstream.made
    assert [(image.seed, image.content_type) for image in images] == [(99, "image/png")] * 2
    assert progress.calls == [(0, 2), (1, 2), (2, 2)]
    [submit] = submits(upstream)
    assert submit.headers["authorization"] == f"Key {FAL_KEY}"
    assert submit.json == {
        "prompt": "a red fox in the snow",
        "image_size": "square_hd",
        "safety_tolerance": "5",
        "enhance_prompt": True,
        "num_images": 2,
        "output_format": "png",
        "seed": 99,
    }
    statuses = calls(upstream, "/status")
    assert len(statuses) == 5  # two queued, two running, then completed
    assert {status.query for status in statuses} == {"logs=1"}
    assert all(r.headers["authorization"] == f"Key {FAL_KEY}" for r in statuses)
    request_id = next(iter(upstream.requests))
    [result] = upstream.requests_to(f"/fal-ai/flux-pro/requests/{request_id}")
    assert result.headers["authorization"] == f"Key {FAL_KEY}"
    fetches = [r for r in upstream.received if r.path.startswith("/files/")]
    assert len(fetches) == 2
    assert all("authorization" not in fetch.headers for fetch in fetches)
    assert calls(upstream, "/cancel", "PUT") == []


def test_width_and_height_are_sent_as_fals_custom_image_size(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    [image] = run(provider, catalog, width=1440, height=800)

    assert submits(upstream)[0].json["image_size"] == {"width": 1440, "height": 800}
    assert (image.width, image.height) == (1440 // 16, 800 // 16)
    assert "seed" not in submits(upstream)[0].json
    assert image.seed == 4242  # the seed fal chose, as its answer says


def test_without_a_size_fals_default_preset_is_sent(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    run(provider, catalog)

    assert submits(upstream)[0].json["image_size"] == "landscape_4_3"


def test_ultra_takes_an_aspect_ratio_and_raw(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    run(provider, catalog, "flux-pro-1.1-ultra", aspect_ratio="21:9", raw=True, seed=3)

    assert submits(upstream, ULTRA)[0].json == {
        "prompt": "a red fox in the snow",
        "aspect_ratio": "21:9",
        "raw": True,
        "safety_tolerance": "2",
        "enhance_prompt": False,
        "num_images": 1,
        "output_format": "jpeg",
        "seed": 3,
    }
    # status and result live on the endpoint's owner/app, without the subpath
    assert all(r.path.startswith("/fal-ai/flux-pro/requests/") for r in calls(upstream, "/status"))


def test_kontext_edits_an_image_sent_inline_as_a_data_uri(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    source = ImageInput(image_bytes(40, 24, "png"), "image/png", 40, 24)

    [image] = run(
        provider, catalog, "fal/flux-pro-kontext", kind="edit", image=source, guidance_scale=5.0
    )

    assert image.data == upstream.made[0]
    [submit] = submits(upstream, KONTEXT)
    prefix = "data:image/png;base64,"
    assert submit.json["image_url"].startswith(prefix)
    assert base64.b64decode(submit.json["image_url"][len(prefix) :]) == source.data
    assert submit.json["guidance_scale"] == 5.0
    assert "aspect_ratio" not in submit.json  # the input image's


def test_kontext_without_an_image_goes_to_text_to_image(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    run(provider, catalog, "fal/flux-pro-kontext", aspect_ratio="9:16")

    [submit] = submits(upstream, f"{KONTEXT}/text-to-image")
    assert submit.json["aspect_ratio"] == "9:16"
    assert "image_url" not in submit.json


def test_dev_and_schnell_send_their_steps_and_dev_its_guidance(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    run(provider, catalog, "fal/flux-dev", num_steps=30, guidance_scale=4.5)
    run(provider, catalog, "fal/flux-schnell", enable_safety_checker=False)

    [dev] = submits(upstream, DEV)
    assert (dev.json["num_inference_steps"], dev.json["guidance_scale"]) == (30, 4.5)
    [schnell] = submits(upstream, SCHNELL)
    assert schnell.json["num_inference_steps"] == 4
    assert schnell.json["enable_safety_checker"] is False
    assert "guidance_scale" not in schnell.json


@pytest.mark.parametrize(
    ("model", "options", "param"),
    [
        ("fal/flux-pro-v1.1", {"image_size": "huge"}, "image_size"),
        ("fal/flux-pro-v1.1", {"image_size": "square", "width": 512, "height": 512}, "image_size"),
        ("fal/flux-pro-v1.1", {"width": 512}, "height"),
        ("fal/flux-pro-v1.1", {"width": 500, "height": 512}, "width"),
        ("fal/flux-pro-v1.1", {"safety_tolerance": 7}, "safety_tolerance"),
        ("fal/flux-pro-v1.1", {"n": 5}, "n"),
        ("fal/flux-pro-v1.1", {"num_steps": 4}, "num_steps"),
        ("fal/flux-pro-v1.1-ultra", {"aspect_ratio": "5:4"}, "aspect_ratio"),
        ("fal/flux-schnell", {"num_steps": 13}, "num_steps"),
        ("fal/flux-schnell", {"guidance_scale": 3.5}, "guidance_scale"),
        ("fal/flux-dev", {"guidance_scale": 25}, "guidance_scale"),
    ],
)
def test_options_are_checked_before_anything_is_sent(
    catalog: Catalog, model: str, options: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        options_for(catalog, catalog.resolve(model), **options)

    assert caught.value.param == param


def test_a_failed_request_is_a_backend_error(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    upstream.plan = Plan(error="CUDA out of memory")

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == "fal failed the request: CUDA out of memory (runner_error)"
    assert not any(r.path.startswith("/files/") for r in upstream.received)


def test_images_fals_safety_checker_flagged_are_dropped(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    upstream.plan = Plan(nsfw=[True, False, True])

    images = run(provider, catalog, n=3)

    assert [image.data for image in images] == [upstream.made[1]]
    fetched = [r.path for r in upstream.received if r.path.startswith("/files/")]
    assert len(fetched) == 1 and fetched[0].endswith("/1.jpeg")


def test_a_request_whose_every_image_was_flagged_fails(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    upstream.plan = Plan(nsfw=[True])

    with pytest.raises(BackendError, match="safety checker withheld every image"):
        run(provider, catalog)


def test_cancel_cancels_the_request_upstream_and_stops_polling(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog, cancel: CancelToken
) -> None:
    upstream.plan = Plan(queued_polls=10**6)
    threading.Timer(0.1, cancel.cancel).start()

    started = time.monotonic()
    with pytest.raises(Canceled):
        run(provider, catalog, cancel=cancel)

    assert time.monotonic() - started < 1.0
    [put] = calls(upstream, "/cancel", "PUT")
    assert put.headers["authorization"] == f"Key {FAL_KEY}"
    [queued] = upstream.requests.values()
    assert queued.canceled
    polls = len(calls(upstream, "/status"))
    time.sleep(0.05)
    assert len(calls(upstream, "/status")) == polls  # nothing after the cancel


def test_past_its_window_the_request_is_canceled_and_times_out(
    upstream: FakeFal, make_settings: Any, catalog: Catalog
) -> None:
    provider = FalProvider.from_settings(
        fal_settings(
            make_settings, upstream, fal_poll_interval_seconds=0.02, fal_poll_timeout_seconds=0.2
        )
    )
    upstream.plan = Plan(queued_polls=1, running_polls=10**6)

    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as caught:
        run(provider, catalog)

    assert caught.value.message == "Image generation timed out"
    assert 0.2 <= time.monotonic() - started < 1.5
    assert len(calls(upstream, "/cancel", "PUT")) == 1
    assert len(submits(upstream)) == 1


def test_a_failed_cancel_still_ends_the_job_as_canceled(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog, cancel: CancelToken
) -> None:
    upstream.plan = Plan(queued_polls=10**6)
    threading.Timer(0.05, cancel.cancel).start()
    failing = Reply.json({"detail": "Internal Server Error"}, 500)
    original = upstream.handle

    def refusing_cancel(request: Received) -> Reply:
        return failing if request.method == "PUT" else original(request)

    upstream.handle = refusing_cancel  # type: ignore[method-assign]

    with pytest.raises(Canceled):
        run(provider, catalog, cancel=cancel)

    assert len(calls(upstream, "/cancel", "PUT")) == 3  # retried, then given up on


def test_upstream_validation_is_a_validation_error_with_its_param(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    upstream.script(f"/{PRO}", unprocessable("prompt", "Prompt contains forbidden words"))

    with pytest.raises(ValidationError) as caught:
        run(provider, catalog)

    assert (caught.value.message, caught.value.param) == (
        "Prompt contains forbidden words",
        "prompt",
    )


def test_500_on_submit_is_retried_then_a_backend_error(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    failing = Reply.json({"detail": "Internal Server Error"}, 500)
    upstream.script(f"/{PRO}", failing, failing, failing)

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == "The fal provider answered HTTP 500: Internal Server Error"
    assert len(submits(upstream)) == 3


def test_a_refused_key_is_a_backend_error(
    upstream: FakeFal, make_settings: Any, catalog: Catalog
) -> None:
    provider = FalProvider.from_settings(
        fal_settings(make_settings, upstream, fal_api_key="not-the-key")
    )

    with pytest.raises(BackendError, match=r"refused pixelgate's API key .*HTTP 401") as caught:
        run(provider, catalog)

    assert "not-the-key" not in caught.value.message


def test_without_a_key_the_models_are_unavailable(
    upstream: FakeFal, make_settings: Any, catalog: Catalog
) -> None:
    provider = FalProvider.from_settings(make_settings(fal_base_url=upstream.url))

    assert provider.unavailable_reason(catalog.resolve("fal/flux-pro-v1.1")) == (
        "provider 'fal' has no API key (set PIXELGATE_FAL_API_KEY)"
    )
    with pytest.raises(ModelUnavailable):
        run(provider, catalog)
    assert upstream.received == []


def test_a_slow_upstream_trips_the_timeout(
    upstream: FakeFal, make_settings: Any, catalog: Catalog
) -> None:
    provider = FalProvider.from_settings(
        fal_settings(make_settings, upstream, provider_timeout_seconds=0.3)
    )
    upstream.script(f"/{PRO}", Reply(delay=1.5))

    with pytest.raises(Timeout):
        run(provider, catalog)


@pytest.mark.parametrize(
    "url_base",
    ["http://169.254.169.254", "https://queue.fal.run.attacker.example", "http://127.0.0.2:1"],
)
def test_request_urls_outside_fal_are_refused_before_the_key_goes_there(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog, url_base: str
) -> None:
    upstream.plan = Plan(url_base=url_base)

    with pytest.raises(BackendError, match="request URL outside its own hosts"):
        run(provider, catalog)

    assert [r.path for r in upstream.received] == [f"/{PRO}"]


def test_without_urls_in_the_answer_they_are_built_on_the_endpoints_owner_and_app(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    upstream.plan = Plan(queued_polls=0, running_polls=0)
    original = upstream.handle

    def bare_answer(request: Received) -> Reply:
        reply = original(request)
        if request.method == "POST":
            request_id = next(iter(upstream.requests))
            return Reply.json({"request_id": request_id})
        return reply

    upstream.handle = bare_answer  # type: ignore[method-assign]

    [image] = run(provider, catalog, "flux-pro-1.1-ultra")

    request_id = next(iter(upstream.requests))
    assert image.data == upstream.made[0]
    assert upstream.requests_to(f"/fal-ai/flux-pro/requests/{request_id}/status")


def test_a_request_submitted_by_an_earlier_attempt_is_followed_not_sent_again(
    upstream: FakeFal, provider: FalProvider, catalog: Catalog
) -> None:
    upstream.plan = Plan(queued_polls=10**6)
    kept: list[Mapping[int, UpstreamTask]] = []
    first_try = CancelToken()
    threading.Timer(0.05, first_try.cancel).start()
    with pytest.raises(Canceled):
        run(provider, catalog, cancel=first_try, upstream=UpstreamState(keep=kept.append))
    noted = kept[-1][0]
    [queued] = upstream.requests.values()
    assert noted.task_id in upstream.requests and noted.polling_url
    # the canceled request is done with; a later attempt finds a fresh one in the same place
    queued.canceled, queued.plan = False, Plan(queued_polls=0, running_polls=0)
    queued.polls = 0

    [image] = run(provider, catalog, upstream=UpstreamState({0: noted}, attempt=2))

    assert image.data == upstream.made[0]
    assert len(submits(upstream)) == 1


def test_a_request_an_earlier_attempt_may_have_sent_is_not_sent_again(
    provider: FalProvider, upstream: FakeFal, catalog: Catalog
) -> None:
    maybe_sent = UpstreamState({0: UpstreamTask("fal", by_attempt=1)}, attempt=2)

    with pytest.raises(BackendError, match="not sent again"):
        run(provider, catalog, upstream=maybe_sent)

    assert upstream.received == []


@pytest.mark.parametrize(
    ("model", "options", "price"),
    [
        ("fal/flux-pro-v1.1", {}, "0.04"),  # landscape_4_3: under one megapixel
        ("fal/flux-pro-v1.1", {"image_size": "square_hd"}, "0.04"),  # exactly one
        ("fal/flux-pro-v1.1", {"width": 1440, "height": 1024}, "0.08"),  # 1.4, rounded up
        ("fal/flux-dev", {"width": 2048, "height": 2048}, "0.100"),
        ("fal/flux-schnell", {"image_size": "square"}, "0.003"),
        ("fal/flux-pro-v1.1-ultra", {"aspect_ratio": "21:9"}, "0.06"),
        ("fal/flux-pro-kontext", {}, "0.04"),
    ],
)
def test_prices_follow_fals_per_image_and_per_megapixel_prices(
    catalog: Catalog, model: str, options: dict[str, Any], price: str
) -> None:
    spec = catalog.resolve(model)
    validated = options_for(catalog, spec, **options)

    assert spec.price_per_image(size=getattr(validated, "size", None)) == Decimal(price)


@pytest.mark.parametrize(
    ("model", "ratio"), [("fal/flux-pro-kontext", "16:9"), ("fal/flux-pro-v1.1-ultra", "16:9")]
)
def test_width_and_height_map_to_the_nearest_ratio_fal_takes(
    catalog: Catalog, model: str, ratio: str
) -> None:
    spec = catalog.resolve(model)
    family = OPTION_FAMILIES[spec.family]

    options, change = plan_aspect_ratio(spec, family, {"width": 1000, "height": 560})

    assert options == {"aspect_ratio": ratio}
    assert change is not None and change.to == ratio
    # a ratio only some models take is never chosen for one that does not (fal has no 5:4)
    assert plan_aspect_ratio(spec, family, {"width": 500, "height": 400})[0] != {
        "aspect_ratio": "5:4"
    }
