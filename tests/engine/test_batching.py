"""Dynamic batching: concurrent compatible jobs share one pipeline call, each gets the image
of its own seed (the same bytes whenever the same jobs are batched the same way; up to the CPU
kernels' last bits of the solo image), and canceling one job of a batch cancels only that job."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.errors import Canceled
from pixelgate.providers.base import CancelToken, GeneratedImage, ImageTask
from pixelgate.providers.batching import Batcher, Withdrawn
from pixelgate.providers.local_diffusion import LocalDiffusionProvider
from tests.conftest import Server
from tests.helpers import GENERATE, submit, wait_for

MAX_BATCH_DRIFT = 4
"""Largest difference of one channel of one pixel (of 255) between a batched image and its solo
run: the kernels' rounding, not another picture (another seed differs by far more)."""

# -- the batcher on its own ---------------------------------------------------------------


class Recorder:
    """A batch function that records each call and answers item * 10, after `delay`."""

    def __init__(self, delay: float = 0.05) -> None:
        self.calls: list[tuple[Hashable, list[int]]] = []
        self.delay = delay

    def __call__(self, key: Hashable, items: Sequence[int]) -> list[int | BaseException]:
        self.calls.append((key, list(items)))
        time.sleep(self.delay)
        return [item * 10 for item in items]


def submit_together(batcher: Batcher[int, int], jobs: list[tuple[str, int]]) -> list[Any]:
    def one(job: tuple[str, int]) -> Any:
        try:
            return batcher.submit(job[0], job[1])
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


def test_compatible_items_arriving_together_share_one_call() -> None:
    record = Recorder()
    batcher: Batcher[int, int] = Batcher(record, max_size=8, window_seconds=0.2)

    results = submit_together(batcher, [("a", 1), ("a", 2), ("a", 3)])

    assert results == [10, 20, 30]
    assert [sorted(items) for _, items in record.calls] == [[1, 2, 3]]


def test_items_with_other_keys_run_in_calls_of_their_own() -> None:
    record = Recorder()
    batcher: Batcher[int, int] = Batcher(record, max_size=8, window_seconds=0.2)

    results = submit_together(batcher, [("a", 1), ("b", 2), ("a", 3)])

    assert results == [10, 20, 30]
    assert sorted((key, sorted(items)) for key, items in record.calls) == [
        ("a", [1, 3]),
        ("b", [2]),
    ]


def test_a_batch_never_exceeds_its_size_counting_each_items_images() -> None:
    record = Recorder()
    batcher: Batcher[int, int] = Batcher(
        record, max_size=4, window_seconds=0.2, size=lambda item: item
    )

    submit_together(batcher, [("a", 3), ("a", 1), ("a", 2), ("a", 2)])

    assert all(sum(items) <= 4 for _, items in record.calls)
    assert sorted(item for _, items in record.calls for item in items) == [1, 2, 2, 3]


def test_one_call_at_a_time_and_errors_reach_only_their_own_item() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def run(key: Hashable, items: Sequence[int]) -> list[int | BaseException]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return [ValueError("odd") if item % 2 else item for item in items]

    batcher: Batcher[int, int] = Batcher(run, max_size=2, window_seconds=0.01)
    results = submit_together(batcher, [(str(index % 3), index) for index in range(6)])

    assert most == 1
    assert [isinstance(result, ValueError) for result in results] == [False, True] * 3


def test_an_item_canceled_while_it_waits_leaves_without_a_call() -> None:
    canceled: set[int] = set()
    record = Recorder(delay=0.5)
    batcher: Batcher[int, int] = Batcher(
        record, max_size=1, window_seconds=0, canceled=lambda item: item in canceled
    )
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.submit, "a", 1)
        time.sleep(0.1)  # the first call runs
        second = pool.submit(batcher.submit, "a", 2)
        time.sleep(0.1)
        canceled.add(2)
        with pytest.raises(Withdrawn):
            second.result(timeout=0.4)  # before the first call ends
        assert first.result() == 10
    assert record.calls == [("a", [1])]


def test_an_item_sent_alone_skips_the_window_and_others_still_wait_for_it() -> None:
    record = Recorder(delay=0.0)
    batcher: Batcher[int, int] = Batcher(record, max_size=4, window_seconds=0.5)

    started = time.monotonic()
    assert batcher.submit("a", 1, alone=True) == 10
    alone = time.monotonic() - started
    started = time.monotonic()
    assert batcher.submit("a", 2) == 20
    waited = time.monotonic() - started

    assert alone < 0.25 <= 0.5 <= waited
    assert record.calls == [("a", [1]), ("a", [2])]


# -- the local provider: batched images show the solo images ---------------------------------


@pytest.fixture(scope="module")
def provider(models_dir: Path) -> LocalDiffusionProvider:
    return LocalDiffusionProvider(
        models_dir, device="cpu", torch_threads=1, max_batch_size=8, batch_window_seconds=0.3
    )


@pytest.fixture(scope="module")
def tiny() -> ModelSpec:
    return Catalog.load().resolve("local/tiny")


def run_job(
    provider: LocalDiffusionProvider,
    spec: ModelSpec,
    options: dict[str, Any],
    *,
    cancel: CancelToken | None = None,
    progress: Callable[[int, int], None] = lambda _step, _total: None,
) -> list[GeneratedImage]:
    catalog = Catalog.load()
    validated = catalog.validate_options(spec, {"prompt": "a red circle", **options})
    return provider.run(
        spec, ImageTask("generate", validated), progress=progress, cancel=cancel or CancelToken()
    )


JOBS = [
    {"prompt": "a red circle", "seed": 1},
    {"prompt": "a blue square", "seed": 2, "n": 2},
    {"prompt": "a green boat", "seed": 3, "negative_prompt": "blurry"},
    {"prompt": "a green boat", "seed": 4, "negative_prompt": "dark"},
]


def run_together(
    provider: LocalDiffusionProvider, spec: ModelSpec, jobs: list[dict[str, Any]]
) -> list[list[GeneratedImage]]:
    """The jobs at once, each 30 ms after the one before: one arrival order, so one batch
    arrangement, every time."""

    def staggered(index: int) -> list[GeneratedImage]:
        time.sleep(0.03 * index)
        return run_job(provider, spec, jobs[index])

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(staggered, range(len(jobs))))


def pixels(data: bytes) -> np.ndarray[Any, Any]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_batched_images_are_reproducible_and_show_the_solo_image(
    provider: LocalDiffusionProvider, tiny: ModelSpec
) -> None:
    solo = [[image.data for image in run_job(provider, tiny, job)] for job in JOBS]
    before = provider.batch_stats(tiny.id)

    together = run_together(provider, tiny, JOBS)
    again = run_together(provider, tiny, JOBS)

    after = provider.batch_stats(tiny.id)
    batched = [[image.data for image in images] for images in together]
    # the same batch arrangement gives the same bytes
    assert [[image.data for image in images] for images in again] == batched
    assert [[image.seed for image in images] for images in together] == [[1], [2, 3], [3], [4]]
    # and each image is its solo image, up to the CPU kernels' last bits
    for batched_job, solo_job in zip(batched, solo, strict=True):
        for batched_image, solo_image in zip(batched_job, solo_job, strict=True):
            difference = np.abs(pixels(batched_image) - pixels(solo_image))
            assert difference.max() <= MAX_BATCH_DRIFT, difference.max()
    other_seed = pixels(run_job(provider, tiny, {**JOBS[0], "seed": 99})[0].data)
    assert np.abs(other_seed - pixels(solo[0][0])).max() > 10 * MAX_BATCH_DRIFT
    # jobs 0-1 (no negative prompt) share a call, and so do jobs 2-3, in each run
    assert after.calls - before.calls == 4
    assert after.largest == 2


def test_canceling_one_job_of_a_batch_cancels_only_that_job(
    provider: LocalDiffusionProvider, tiny: ModelSpec
) -> None:
    slow = {"num_steps": 30, "width": 64, "height": 64}
    alone = run_job(provider, tiny, {**slow, "seed": 11})
    victim = CancelToken()

    def cancel_at_step_3(step: int, _total: int) -> None:
        if step == 3:
            victim.cancel()

    with ThreadPoolExecutor(2) as pool:
        kept = pool.submit(run_job, provider, tiny, {**slow, "seed": 11})
        doomed = pool.submit(
            run_job, provider, tiny, {**slow, "seed": 12}, cancel=victim, progress=cancel_at_step_3
        )
        with pytest.raises(Canceled):
            doomed.result()
        kept_pixels = pixels(kept.result()[0].data)
        assert np.abs(kept_pixels - pixels(alone[0].data)).max() <= MAX_BATCH_DRIFT
    assert provider.batch_stats(tiny.id).largest >= 2


def test_every_pipeline_call_runs_on_the_one_model_thread(
    provider: LocalDiffusionProvider, tiny: ModelSpec
) -> None:
    threads: set[str] = set()

    def note_thread(_step: int, _total: int) -> None:  # called from inside the pipeline call
        threads.add(threading.current_thread().name)

    shapes = Catalog.load().resolve("pixelgate/shapes")
    callers = [(tiny, {"seed": 31}), (tiny, {"seed": 32}), (shapes, {"seed": 33, "num_steps": 2})]
    for spec, options in callers:  # each from a thread of its own, as the model host runs them
        caller = threading.Thread(
            target=run_job, args=(provider, spec, options), kwargs={"progress": note_thread}
        )
        caller.start()
        caller.join()

    assert len(threads) == 1 and next(iter(threads)).startswith("pixelgate-model"), threads


def test_a_cpu_model_keeps_its_convolutions_in_channels_last(
    provider: LocalDiffusionProvider, tiny: ModelSpec
) -> None:
    import torch

    run_job(provider, tiny, {"seed": 5})
    with provider.models.use(tiny.id) as model:
        pipeline = next(iter(model.pipelines.values()))
        for name in ("unet", "vae"):
            convolutions = [
                module.weight
                for module in getattr(pipeline, name).modules()
                if isinstance(module, torch.nn.Conv2d)
            ]
            assert convolutions and all(
                weight.is_contiguous(memory_format=torch.channels_last) for weight in convolutions
            ), name


# -- through the server -------------------------------------------------------------------


def test_concurrent_requests_to_the_server_batch_and_match_solo_runs(make_server: Any) -> None:
    server: Server = make_server(PIXELGATE_BATCH_WINDOW_MS="100").start()
    bodies = [{"seed": seed, "prompt": f"shape {seed}", "num_steps": 6} for seed in (21, 22, 23)]
    with server.client() as api:
        solo = []
        for body in bodies:
            job = wait_for(api, submit(api, **body)["id"], "succeeded", "failed")
            solo.append(httpx.get(job["result"]["data"][0]["url"]).content)
        blocker = submit(api, num_steps=30, width=128, height=128)  # the others queue behind
        jobs = [submit(api, **body, cache=False) for body in bodies]  # run, not cached
        wait_for(api, blocker["id"], "succeeded")
        done = [wait_for(api, job["id"], "succeeded", "failed") for job in jobs]
        together = [httpx.get(job["result"]["data"][0]["url"]).content for job in done]

    for batched, alone in zip(together, solo, strict=True):
        assert np.abs(pixels(batched) - pixels(alone)).max() <= MAX_BATCH_DRIFT
    assert "batch of 3 jobs" in server.log_path.read_text()


def test_a_lone_request_does_not_wait_for_companions_and_a_burst_still_batches(
    make_server: Any,
) -> None:
    window = 1.5
    server: Server = make_server(PIXELGATE_BATCH_WINDOW_MS=str(int(window * 1000))).start()
    body = {"model": "local/tiny", "prompt": "a red circle", "num_steps": 2, "cache": False}
    release = threading.Event()

    def held_back(seed: int) -> Iterator[bytes]:
        release.wait(10)
        yield json.dumps({**body, "seed": seed}).encode()

    with server.client() as api:
        api.post(GENERATE, json={**body, "seed": 40}).raise_for_status()  # loads the model
        started = time.monotonic()
        response = api.post(GENERATE, json={**body, "seed": 41})
        alone = time.monotonic() - started
        assert response.status_code == 200, response.text

        def one(seed: int) -> int:
            headers = {"Content-Type": "application/json"}
            return api.post(GENERATE, content=held_back(seed), headers=headers).status_code

        # a burst: three requests in progress (headers sent) before the first job is sent
        with ThreadPoolExecutor(3) as pool:
            burst = pool.map(one, (42, 43, 44))
            time.sleep(0.5)
            release.set()
            assert list(burst) == [200, 200, 200]

    # without the hint a lone request waits a whole quiet window for companions, and with a
    # hint that always said "alone" the burst's first job would run by itself
    assert alone < window, alone
    assert "batch of 3 jobs" in server.log_path.read_text()
