"""A synchronous request's job (`JobService.run`): run in the caller's own thread when this
process runs the model's jobs one by one, handed to the queue and waited for otherwise. Either
way it is the same durable job, with the same events, lease, cancel and retries."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import select

from pixelgate.db.tables import BudgetAccount, Job
from pixelgate.errors import BackendError, Canceled, ServiceUnavailable, Timeout
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services, images_of

CALLER = Principal("key_test", "default", frozenset({"admin"}))
COMMAND = ImageCommand(task="generate", model="test/fixture", options={"prompt": "x", "seed": 3})


async def stays() -> bool:
    return False


async def hangs_up() -> bool:
    return True


def events(services: Services, job_id: str) -> list[str]:
    return [event.type for event in services.store.events_after(job_id, None)]


def only_job(services: Services) -> Job:
    with services.db.session() as session:
        [job] = session.scalars(select(Job)).all()
    return job


def held_until_released(services: Services) -> threading.Event:
    """Make the provider draw only once the returned event is set."""
    release = threading.Event()

    def slow(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        assert release.wait(10)
        return [GeneratedImage(b"\x89PNG late", "image/png", 8, 8, seed=3)]

    services.provider.behaviour = slow
    return release


async def ended(services: Services, job_id: str) -> Job:
    """The job once it has ended, read from the store (the test's own view, not the caller's)."""
    for _ in range(500):
        job = await asyncio.to_thread(services.jobs.get, CALLER, job_id)
        if job.status in ("succeeded", "failed", "canceled"):
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not end")


def as_is(job: Job) -> Job:
    return job


def test_a_job_run_here_is_claimed_when_accepted_and_runs_in_the_callers_thread(
    services: Services,
) -> None:
    services.queue.inline = True
    ran_in: list[threading.Thread] = []

    def draw(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        ran_in.append(threading.current_thread())
        return [GeneratedImage(b"\x89PNG here", "image/png", 8, 8, seed=task.options.seed_value)]

    def answer(job: Job) -> Job:
        ran_in.append(threading.current_thread())
        return job

    services.provider.behaviour = draw
    job = asyncio.run(
        services.jobs.run(CALLER, COMMAND, timeout=10, disconnected=stays, answer=answer)
    )

    assert job.status == "succeeded"
    assert services.queue.job_ids == []  # never handed to a worker
    assert ran_in[0] is not threading.main_thread()  # off the event loop
    assert ran_in[1] is ran_in[0]  # and answered in the thread it ran in
    assert not ran_in[0].name.startswith("pixelgate-worker")
    stored = services.jobs.get(CALLER, job.id)
    assert (stored.status, stored.attempts, stored.worker_id) == (
        "succeeded",
        1,
        services.executor.worker_id,
    )
    assert stored.started_at is not None and stored.lease_expires_at is None
    assert events(services, job.id) == ["queued", "running", "succeeded"]
    [image] = images_of(job)
    assert services.files.read(services.files.get("default", image.file_id)) == b"\x89PNG here"


def test_a_job_not_run_here_is_queued_and_waited_for(services: Services) -> None:
    services.queue.inline = False

    async def scenario() -> Job:
        waiting = asyncio.create_task(
            services.jobs.run(CALLER, COMMAND, timeout=10, disconnected=stays, answer=as_is)
        )
        while not services.queue.job_ids:
            await asyncio.sleep(0.01)
        assert not waiting.done()
        await asyncio.to_thread(services.executor.run, services.queue.job_ids[0])
        return await waiting

    job = asyncio.run(scenario())
    assert job.status == "succeeded"
    assert services.queue.job_ids == [job.id]
    assert services.provider.runs == 1


def test_a_job_run_here_that_outlasts_the_wait_times_out_and_still_ends(
    services: Services,
) -> None:
    services.queue.inline = True
    release = held_until_released(services)

    async def scenario() -> Job:
        with pytest.raises(Timeout, match=r"still running after 0\.3s; follow it at GET /v1/jobs/"):
            await services.jobs.run(CALLER, COMMAND, timeout=0.3, disconnected=stays, answer=as_is)
        job = only_job(services)
        assert job.status == "running"  # the caller stopped waiting; the job goes on
        release.set()
        return await ended(services, job.id)

    assert asyncio.run(scenario()).status == "succeeded"


def test_a_caller_who_hangs_up_cancels_the_job_run_for_them(services: Services) -> None:
    services.queue.inline = True

    def until_canceled(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        deadline = time.monotonic() + 10
        while not cancel.canceled and time.monotonic() < deadline:
            time.sleep(0.01)
        raise Canceled("Job canceled")

    services.provider.behaviour = until_canceled

    async def scenario() -> Job:
        with pytest.raises(Canceled, match="client disconnected"):
            await services.jobs.run(
                CALLER, COMMAND, timeout=10, disconnected=hangs_up, answer=as_is
            )
        return await ended(services, only_job(services).id)

    job = asyncio.run(scenario())
    assert job.status == "canceled"
    assert events(services, job.id) == ["queued", "running", "canceled"]


def test_a_job_run_here_that_is_tried_again_is_waited_for_until_it_ends(
    services: Services,
) -> None:
    services.queue.inline = True
    attempts: list[str] = []

    def flaky(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        attempts.append(threading.current_thread().name)
        if len(attempts) == 1:
            raise ServiceUnavailable("upstream is restarting")
        return [GeneratedImage(b"\x89PNG again", "image/png", 8, 8, seed=3)]

    services.provider.behaviour = flaky

    async def scenario() -> Job:
        waiting = asyncio.create_task(
            services.jobs.run(CALLER, COMMAND, timeout=10, disconnected=stays, answer=as_is)
        )
        while not services.queue.job_ids:  # the retry goes to the queue, like any other
            await asyncio.sleep(0.01)
        await asyncio.to_thread(services.executor.run, services.queue.job_ids[0])
        return await waiting

    job = asyncio.run(scenario())
    assert job.status == "succeeded"
    assert job.attempts == 2
    assert len(attempts) == 2
    assert events(services, job.id) == ["queued", "running", "queued", "running", "succeeded"]


def test_the_same_idempotency_key_waits_for_the_job_run_by_the_first_request(
    services: Services,
) -> None:
    services.queue.inline = True
    release = held_until_released(services)
    keyed = ImageCommand(
        task="generate", model="test/fixture", options={"prompt": "x"}, idempotency_key="k-1"
    )

    async def scenario() -> tuple[Job, Job]:
        first = asyncio.create_task(
            services.jobs.run(CALLER, keyed, timeout=10, disconnected=stays, answer=as_is)
        )
        while services.provider.runs == 0:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(
            services.jobs.run(CALLER, keyed, timeout=10, disconnected=stays, answer=as_is)
        )
        await asyncio.sleep(0.2)
        assert not second.done()  # waiting for the first request's job, not running another
        release.set()
        return await first, await second

    first, second = asyncio.run(scenario())
    assert first.id == second.id
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert services.provider.runs == 1


@pytest.mark.parametrize("policy", ["free", "charge"])
def test_concurrent_identical_seeded_requests_compute_once_and_the_rest_are_cache_hits(
    services: Services, policy: str
) -> None:
    """Issue 19.17: 50 identical seeded requests each computed and each paid (0 cache hits)."""
    services.queue.inline = True
    services.tenants.create(
        tenant_id="acme",
        name="acme",
        changes=TenantChanges(cache_policy=policy, prices={"test/fixture": {"default": "0.25"}}),
    )
    caller = Principal("key_acme", "acme", frozenset({"generate", "read"}))

    def slow(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        time.sleep(0.5)
        return [GeneratedImage(b"\x89PNG once", "image/png", 8, 8, seed=task.options.seed_value)]

    services.provider.behaviour = slow
    requests = 20

    async def scenario() -> list[Job]:
        return list(
            await asyncio.gather(
                *(
                    services.jobs.run(caller, COMMAND, timeout=20, disconnected=stays, answer=as_is)
                    for _ in range(requests)
                )
            )
        )

    jobs = asyncio.run(scenario())

    assert services.provider.runs == 1
    assert sorted(job.cached for job in jobs) == [False] + [True] * (requests - 1)
    assert len({job.id for job in jobs}) == requests  # each caller has a job of its own
    assert all(job.status == "succeeded" for job in jobs)
    with services.db.session() as session:
        account = session.get(BudgetAccount, ("acme", "total"))
        assert account is not None
        per_hit = 250_000 if policy == "charge" else 0
        assert (account.spent, account.reserved) == (250_000 + per_hit * (requests - 1), 0)


def test_a_request_that_follows_a_failed_one_computes_itself(services: Services) -> None:
    services.queue.inline = True
    calls: list[int] = []

    def fails_first(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        calls.append(1)
        failing = len(calls) == 1
        time.sleep(0.3)
        if failing:
            raise BackendError("upstream said no")
        return [GeneratedImage(b"\x89PNG second", "image/png", 8, 8, seed=3)]

    services.provider.behaviour = fails_first

    async def scenario() -> list[Job | BaseException]:
        first = asyncio.create_task(
            services.jobs.run(CALLER, COMMAND, timeout=10, disconnected=stays, answer=as_is)
        )
        await asyncio.sleep(0.1)
        second = services.jobs.run(CALLER, COMMAND, timeout=10, disconnected=stays, answer=as_is)
        return list(await asyncio.gather(first, second, return_exceptions=True))

    first, second = asyncio.run(scenario())
    assert isinstance(first, BackendError)
    assert isinstance(second, Job) and second.status == "succeeded" and not second.cached
    assert len(calls) == 2
