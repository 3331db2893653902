"""The Black Forest Labs adapter against a fake BFL API on loopback: submit, poll, fetch."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pixelgate.catalog import Catalog
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
from pixelgate.providers.bfl import BlackForestLabsProvider, polling_url_allowed
from tests.providers.conftest import BFL_KEY, Progress, options_for
from tests.providers.upstreams.bfl import GET_RESULT, FakeBFL, Plan, unprocessable
from tests.providers.upstreams.images import image_bytes
from tests.providers.upstreams.server import Reply

PRO = "/v1/flux-pro-1.1"
KONTEXT = "/v1/flux-kontext-pro"


@pytest.fixture
def upstream() -> Iterator[FakeBFL]:
    with FakeBFL(BFL_KEY) as fake:
        yield fake


@pytest.fixture
def provider(upstream: FakeBFL, make_settings: Any) -> BlackForestLabsProvider:
    return BlackForestLabsProvider.from_settings(
        make_settings(bfl_api_key=BFL_KEY, bfl_base_url=upstream.url)
    )


def run(
    provider: BlackForestLabsProvider,
    catalog: Catalog,
    model: str = "flux-pro-1.1",
    *,
    kind: Any = "generate",
    image: ImageInput | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    **options: Any,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    task = ImageTask(kind=kind, options=options_for(catalog, spec, **options), image=image)
    return provider.run(spec, task, progress=progress or Progress(), cancel=cancel or CancelToken())


def test_flux_pro_is_submitted_polled_until_ready_and_fetched(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog, progress: Progress
) -> None:
    upstream.plan = Plan(pending_polls=2)

    [image] = run(
        provider,
        catalog,
        progress=progress,
        width=512,
        height=384,
        seed=99,
        safety_tolerance=4,
        prompt_upsampling=True,
        output_format="png",
    )

    assert image.data == upstream.made[0]
    assert (image.seed, image.content_type) == (99, "image/png")
    assert progress.calls == [(0, 1), (1, 1)]
    [submit] = upstream.requests_to(PRO)
    assert submit.headers["x-key"] == BFL_KEY
    assert submit.json == {
        "prompt": "a red fox in the snow",
        "width": 512,
        "height": 384,
        "prompt_upsampling": True,
        "safety_tolerance": 4,
        "output_format": "png",
        "seed": 99,
    }
    polls = upstream.requests_to(GET_RESULT)
    assert len(polls) == 3  # two Pending, then Ready
    assert all(poll.headers["x-key"] == BFL_KEY for poll in polls)
    [fetch] = [r for r in upstream.received if r.path.startswith("/results/")]
    assert "x-key" not in fetch.headers


def test_the_upstream_seed_is_kept_when_none_was_asked(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    [image] = run(provider, catalog)

    assert image.seed == 7000
    assert "seed" not in upstream.requests_to(PRO)[0].json


def test_kontext_edit_sends_the_input_image_in_base64(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    source = ImageInput(image_bytes(80, 48, "jpeg"), "image/jpeg", 80, 48)

    [image] = run(
        provider, catalog, "flux-kontext-pro", kind="edit", image=source, aspect_ratio="16:9"
    )

    assert image.data == upstream.made[0]
    [submit] = upstream.requests_to(KONTEXT)
    assert base64.b64decode(submit.json["input_image"]) == source.data
    assert submit.json["aspect_ratio"] == "16:9"
    assert (submit.json["output_format"], submit.json["safety_tolerance"]) == ("png", 2)
    assert "width" not in submit.json


def test_without_a_polling_url_the_task_is_polled_by_id(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    upstream.script(PRO, Reply.json({"id": "task-1"}))
    upstream.script(GET_RESULT, Reply.json({"id": "task-1", "status": "Pending"}))
    sample = upstream.host_file("/results/task-1.jpeg", image_bytes(32, 32, "jpeg"), "image/jpeg")
    upstream.script(
        GET_RESULT,
        Reply.json({"id": "task-1", "status": "Ready", "result": {"sample": sample, "seed": 5}}),
    )

    [image] = run(provider, catalog)

    assert (image.width, image.seed) == (32, 5)
    assert [poll.query for poll in upstream.requests_to(GET_RESULT)] == ["id=task-1"] * 2


@pytest.mark.parametrize("status", ["Error", "Failed"])
def test_a_failed_task_is_a_backend_error(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog, status: str
) -> None:
    upstream.plan = Plan(outcome=status, details={"error": "GPU out of memory"})

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == (
        f"Black Forest Labs failed the task: {status} (error: GPU out of memory)"
    )


@pytest.mark.parametrize("status", ["Request Moderated", "Content Moderated"])
def test_moderation_is_a_backend_error_with_the_reason(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog, status: str
) -> None:
    upstream.plan = Plan(outcome=status, details={"Moderation Reasons": ["Derivative Works"]})

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == (
        f"Black Forest Labs moderated the request: {status} (Moderation Reasons: Derivative Works)"
    )
    assert not any(r.path.startswith("/results/") for r in upstream.received)


def test_a_lost_task_is_a_backend_error(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    upstream.script(
        PRO, Reply.json({"id": "gone", "polling_url": f"{upstream.url}{GET_RESULT}?id=gone"})
    )

    with pytest.raises(BackendError, match="Task not found"):
        run(provider, catalog)


@pytest.mark.parametrize(
    "polling_base",
    ["http://169.254.169.254", "https://api.bfl.ai.attacker.example", "http://127.0.0.2:1"],
)
def test_a_polling_url_outside_the_provider_is_refused(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog, polling_base: str
) -> None:
    upstream.plan = Plan(polling_base=polling_base)

    with pytest.raises(BackendError, match="polling URL outside its own hosts"):
        run(provider, catalog)

    assert [request.path for request in upstream.received] == [PRO]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.bfl.ai/v1/get_result?id=1", True),
        ("https://api.eu1.bfl.ai/v1/get_result?id=1", True),
        ("https://api.us1.bfl.ml/v1/get_result?id=1", True),
        ("https://bfl.ai/v1/get_result?id=1", True),
        ("http://api.eu1.bfl.ai/v1/get_result?id=1", False),
        ("https://api.bfl.ai:8443/v1/get_result?id=1", False),
        ("https://evilbfl.ai/v1/get_result?id=1", False),
        ("https://api.bfl.ai.evil.example/v1/get_result?id=1", False),
        ("https://user@api.bfl.ai/v1/get_result?id=1", False),
        ("http://127.0.0.1:9000/v1/get_result?id=1", True),
        ("http://127.0.0.1:9001/v1/get_result?id=1", False),
        ("http://localhost:9000/v1/get_result?id=1", False),
        ("file:///etc/passwd", False),
    ],
)
def test_polling_url_rule(url: str, allowed: bool) -> None:
    assert polling_url_allowed(url, "http://127.0.0.1:9000") is allowed


def test_the_give_up_window_is_a_timeout(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    provider = BlackForestLabsProvider.from_settings(
        make_settings(
            bfl_api_key=BFL_KEY,
            bfl_base_url=upstream.url,
            bfl_poll_interval_seconds=0.02,
            bfl_poll_timeout_seconds=0.2,
        )
    )
    upstream.plan = Plan(pending_polls=10**6)

    started = time.monotonic()
    with pytest.raises(Timeout) as caught:
        run(provider, catalog)

    assert caught.value.message == "Image generation timed out"
    assert 0.2 <= time.monotonic() - started < 1.5
    assert len(upstream.requests_to(GET_RESULT)) >= 3


def test_cancel_stops_the_polling(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog, cancel: CancelToken
) -> None:
    upstream.plan = Plan(pending_polls=10**6)
    timer = threading.Timer(0.1, cancel.cancel)
    timer.start()

    started = time.monotonic()
    with pytest.raises(Canceled):
        run(provider, catalog, cancel=cancel)

    assert time.monotonic() - started < 1.0
    polls = len(upstream.requests_to(GET_RESULT))
    time.sleep(0.05)
    assert len(upstream.requests_to(GET_RESULT)) == polls  # nothing after the cancel


def test_429_on_submit_is_retried_after_the_retry_after_delay(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    upstream.script(PRO, Reply.json({"detail": "Too many active tasks"}, 429, retry_after="1"))

    started = time.monotonic()
    [image] = run(provider, catalog)

    assert time.monotonic() - started >= 0.18
    assert image.data == upstream.made[0]
    assert len(upstream.requests_to(PRO)) == 2


def test_500_is_a_backend_error_after_the_retries(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    failing = Reply.json({"detail": "Internal Server Error"}, 500)
    upstream.script(PRO, failing, failing, failing)

    with pytest.raises(BackendError) as caught:
        run(provider, catalog)

    assert caught.value.message == "The bfl provider answered HTTP 500: Internal Server Error"
    assert len(upstream.requests_to(PRO)) == 3


def test_upstream_validation_is_a_validation_error_with_its_param(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    upstream.script(PRO, unprocessable("width", "Input should be a multiple of 32"))

    with pytest.raises(ValidationError) as caught:
        run(provider, catalog)

    assert (caught.value.message, caught.value.param) == (
        "Input should be a multiple of 32",
        "width",
    )


@pytest.mark.parametrize(
    ("path", "reply", "message"),
    [
        (PRO, Reply.json({"status": "queued"}), "no `polling_url` or `id`"),
        (PRO, Reply(200, b"<html>", {"content-type": "text/html"}), "not a JSON object"),
        (GET_RESULT, Reply.json({"id": "x"}), "without `status`"),
        (GET_RESULT, Reply.json({"id": "x", "status": "Ready", "result": {}}), "`result.sample`"),
    ],
    ids=["submit-without-id", "submit-not-json", "poll-without-status", "ready-without-sample"],
)
def test_a_malformed_answer_is_a_backend_error(
    provider: BlackForestLabsProvider,
    upstream: FakeBFL,
    catalog: Catalog,
    path: str,
    reply: Reply,
    message: str,
) -> None:
    upstream.script(path, reply)

    with pytest.raises(BackendError, match=message):
        run(provider, catalog)


def test_a_sample_that_is_not_an_image_is_a_backend_error(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    sample = upstream.host_file("/results/broken.jpeg", b"truncated", "image/jpeg")
    upstream.script(
        GET_RESULT, Reply.json({"id": "x", "status": "Ready", "result": {"sample": sample}})
    )

    with pytest.raises(BackendError, match="not an image"):
        run(provider, catalog)


def test_a_slow_upstream_trips_the_timeout(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    provider = BlackForestLabsProvider.from_settings(
        make_settings(bfl_api_key=BFL_KEY, bfl_base_url=upstream.url, provider_timeout_seconds=0.3)
    )
    upstream.script(PRO, Reply(delay=1.5))

    with pytest.raises(Timeout):
        run(provider, catalog)


def test_a_refused_key_is_a_backend_error(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    provider = BlackForestLabsProvider.from_settings(
        make_settings(bfl_api_key="not-the-key", bfl_base_url=upstream.url)
    )

    with pytest.raises(BackendError, match=r"refused pixelgate's API key .*HTTP 403") as caught:
        run(provider, catalog)

    assert "not-the-key" not in caught.value.message


def test_without_a_key_the_model_is_unavailable(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    provider = BlackForestLabsProvider.from_settings(make_settings(bfl_base_url=upstream.url))

    assert provider.unavailable_reason(catalog.resolve("flux-pro-1.1")) == (
        "provider 'bfl' has no API key (set PIXELGATE_BFL_API_KEY)"
    )
    with pytest.raises(ModelUnavailable):
        run(provider, catalog)
    assert upstream.received == []


def test_n_images_are_n_tasks_with_consecutive_seeds(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog, progress: Progress
) -> None:
    images = run(provider, catalog, progress=progress, n=2, seed=5)

    assert [image.seed for image in images] == [5, 6]
    assert [image.data for image in images] == upstream.made
    assert [submit.json["seed"] for submit in upstream.requests_to(PRO)] == [5, 6]
    assert progress.calls == [(0, 2), (1, 2), (2, 2)]


def test_kontext_takes_n_too(
    provider: BlackForestLabsProvider, upstream: FakeBFL, catalog: Catalog
) -> None:
    images = run(provider, catalog, "flux-kontext-pro", n=3, seed=1)
    assert [image.seed for image in images] == [1, 2, 3]
    assert len(upstream.requests_to(KONTEXT)) == 3


def test_a_task_submitted_by_an_earlier_attempt_is_polled_not_submitted_again(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    """Issue 19.3: a retried or restarted job resumes its task; one task is billed."""
    provider = BlackForestLabsProvider.from_settings(
        make_settings(bfl_api_key=BFL_KEY, bfl_base_url=upstream.url)
    )
    upstream.plan = Plan(pending_polls=5)
    spec = catalog.resolve("flux-pro-1.1")
    kept: list[Mapping[int, UpstreamTask]] = []  # the job's records, by image, at each note
    state = UpstreamState(keep=kept.append)
    first_try = CancelToken()
    threading.Timer(0.03, first_try.cancel).start()  # the first attempt is cut off mid-poll
    task = ImageTask(kind="generate", options=options_for(catalog, spec), upstream=state)
    with pytest.raises(Canceled):
        provider.run(spec, task, progress=Progress(), cancel=first_try)
    [noted_before_sending, noted_after] = kept
    assert noted_before_sending == {0: UpstreamTask("bfl")}
    noted = noted_after[0]
    assert noted.task_id in upstream.tasks and noted.polling_url

    again = ImageTask(
        kind="generate", options=options_for(catalog, spec), upstream=UpstreamState({0: noted})
    )
    [image] = provider.run(spec, again, progress=Progress(), cancel=CancelToken())

    assert len([r for r in upstream.received if r.path == PRO]) == 1
    assert image.data == upstream.made[0]


def test_past_its_window_a_task_fails_for_good_and_is_never_resubmitted(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    provider = BlackForestLabsProvider.from_settings(
        make_settings(
            bfl_api_key=BFL_KEY,
            bfl_base_url=upstream.url,
            bfl_poll_interval_seconds=0.02,
            bfl_poll_timeout_seconds=0.2,
        )
    )
    upstream.plan = Plan(pending_polls=10**6)
    spec = catalog.resolve("flux-pro-1.1")
    state = UpstreamState()
    for _ in range(3):  # the first attempt, then two retries of the job
        task = ImageTask(kind="generate", options=options_for(catalog, spec), upstream=state)
        with pytest.raises(ProviderTimeout) as caught:
            provider.run(spec, task, progress=Progress(), cancel=CancelToken())
        assert not caught.value.retryable and caught.value.code == "TIMEOUT"

    assert len([r for r in upstream.received if r.path == PRO]) == 1


# -- issue 19, items 3 and 10 together: each of the `n` tasks is submitted once per job -----


def test_each_of_n_tasks_is_submitted_once_and_resumed_by_a_later_attempt(
    upstream: FakeBFL, make_settings: Any, catalog: Catalog
) -> None:
    """`n` images are `n` billed tasks, one record each: a later attempt polls the tasks it
    finds and submits only the images no attempt submitted."""
    provider = BlackForestLabsProvider.from_settings(
        make_settings(bfl_api_key=BFL_KEY, bfl_base_url=upstream.url)
    )
    upstream.plan = Plan(pending_polls=3)
    spec = catalog.resolve("flux-pro-1.1")
    first_try = CancelToken()
    kept: list[Mapping[int, UpstreamTask]] = []

    def keep(records: Mapping[int, UpstreamTask]) -> None:
        kept.append(records)
        if 0 in records and records[0].polling_url:
            first_try.cancel()  # cut off (a crash, say) while the first image's task runs

    def task(state: UpstreamState) -> ImageTask:
        return ImageTask(
            kind="generate", options=options_for(catalog, spec, n=2, seed=5), upstream=state
        )

    with pytest.raises(Canceled):
        provider.run(spec, task(UpstreamState(keep=keep)), progress=Progress(), cancel=first_try)
    assert list(kept[-1]) == [0] and len(upstream.requests_to(PRO)) == 1

    second = UpstreamState(kept[-1], keep=kept.append)
    images = provider.run(spec, task(second), progress=Progress(), cancel=CancelToken())

    assert [image.seed for image in images] == [5, 6]
    assert [submit.json["seed"] for submit in upstream.requests_to(PRO)] == [5, 6]
    assert kept[-1][0] == kept[1][0]  # image 0's task is the first attempt's
    assert sorted(kept[-1]) == [0, 1]

    # a third attempt (a crash before the result was stored) submits nothing more
    again = provider.run(
        spec, task(UpstreamState(kept[-1])), progress=Progress(), cancel=CancelToken()
    )
    assert [image.data for image in again] == [image.data for image in images]
    assert len(upstream.requests_to(PRO)) == 2


def test_the_records_of_n_tasks_are_kept_by_image_and_read_back() -> None:
    records = {
        0: UpstreamTask("bfl", task_id="a", polling_url="https://api.bfl.ai/a", deadline=1.5),
        2: UpstreamTask("bfl"),
    }

    data = UpstreamState.data_of(records)

    assert data is not None and sorted(data) == ["0", "2"]
    assert UpstreamState.records_from(data) == records
    assert UpstreamState.data_of({}) is None
    # the first form of the note (one record, for the one request) is request 0's
    assert UpstreamState.records_from(records[0].to_dict()) == {0: records[0]}
    assert UpstreamState.records_from(None) == {}
