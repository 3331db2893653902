"""Identical asynchronous requests merged when their jobs run (issue 19, item 17): one job
computes, and the others wait for it and end as cache hits under the tenant's cache policy."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import pytest

from pixelgate.db.tables import BudgetAccount, Job
from pixelgate.errors import BackendError
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service import execution
from pixelgate.service.access import Principal
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services, images_of

CALLER = Principal("key_test", "default", frozenset({"admin"}))
SEEDED = ImageCommand(task="generate", model="test/fixture", options={"prompt": "x", "seed": 3})


def priced_tenant(services: Services, policy: str) -> Principal:
    services.tenants.create(
        tenant_id="acme",
        name="acme",
        changes=TenantChanges(cache_policy=policy, prices={"test/fixture": {"default": "0.25"}}),
    )
    return Principal("key_acme", "acme", frozenset({"generate", "read"}))


def image(task: ImageTask, data: bytes = b"\x89PNG once") -> list[GeneratedImage]:
    return [GeneratedImage(data, "image/png", 8, 8, seed=task.options.seed_value)]


def in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def wait_for(condition: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def hold_first_run(services: Services) -> threading.Event:
    """Make the provider's first run wait until the returned event is set; later runs answer
    at once."""
    release = threading.Event()

    def first_held(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        if services.provider.runs == 1:
            assert release.wait(10)
        return image(task)

    services.provider.behaviour = first_held
    return release


def one_after_another(services: Services, *commands: ImageCommand) -> list[Job]:
    """Submit the commands a second apart, so that each job is older than the next (jobs made
    in the same instant are ordered by id)."""
    jobs = []
    for command in commands:
        jobs.append(services.jobs.submit(CALLER, command))
        services.clock.advance(1)
    return jobs


def job(services: Services, job_id: str, caller: Principal = CALLER) -> Job:
    return services.jobs.get(caller, job_id)


def spent_and_reserved(services: Services, tenant_id: str) -> tuple[int, int]:
    with services.db.session() as session:
        account = session.get(BudgetAccount, (tenant_id, "total"))
        assert account is not None
        return account.spent, account.reserved


@pytest.mark.parametrize("policy", ["free", "charge"])
def test_concurrent_identical_async_requests_compute_once_and_the_rest_are_cache_hits(
    services: Services, policy: str
) -> None:
    caller = priced_tenant(services, policy)

    def slow(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        time.sleep(0.5)
        return image(task)

    services.provider.behaviour = slow
    requests = 8
    ids = [services.jobs.submit(caller, SEEDED).id for _ in range(requests)]
    assert not any(job(services, job_id, caller).cached for job_id in ids)  # all accepted to run

    workers = [in_thread(partial(services.executor.run, job_id)) for job_id in ids]
    for worker in workers:
        worker.join(20)

    ended = [job(services, job_id, caller) for job_id in ids]
    assert services.provider.runs == 1
    assert all(each.status == "succeeded" for each in ended)
    assert sorted(each.cached for each in ended) == [False] + [True] * (requests - 1)
    files = [images_of(each)[0].file_id for each in ended]
    assert len(set(files)) == requests  # each job has its own file over the same bytes
    assert {services.files.read(services.files.get("acme", f)) for f in files} == {b"\x89PNG once"}
    per_hit = 250_000 if policy == "charge" else 0
    assert spent_and_reserved(services, "acme") == (250_000 + per_hit * (requests - 1), 0)
    assert sorted(each.cost for each in ended) == sorted([250_000] + [per_hit] * (requests - 1))
    hit = next(each for each in ended if each.cached)
    events = services.store.events_after(hit.id, None)
    assert [(e.type, e.data) for e in events][-1] == ("succeeded", {"cached": True})


@pytest.mark.parametrize("policy", ["free", "charge"])
def test_a_job_that_finds_its_result_cached_when_it_runs_is_served_from_the_cache(
    services: Services, policy: str
) -> None:
    caller = priced_tenant(services, policy)
    first = services.jobs.submit(caller, SEEDED)
    second = services.jobs.submit(caller, SEEDED)  # accepted while the first was queued

    services.executor.run(first.id)
    services.executor.run(second.id)

    hit = job(services, second.id, caller)
    assert (hit.status, hit.cached) == ("succeeded", True)
    assert services.provider.runs == 1
    assert hit.result is not None and job(services, first.id, caller).result is not None
    assert images_of(hit)[0].seed == 3
    per_hit = 250_000 if policy == "charge" else 0
    assert spent_and_reserved(services, "acme") == (250_000 + per_hit, 0)
    assert (job(services, first.id, caller).cost, hit.cost) == (250_000, per_hit)


def test_a_job_that_waited_for_a_failed_one_computes_itself(services: Services) -> None:
    calls: list[str] = []
    first_running = threading.Event()

    def fails_first(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        calls.append("call")
        if len(calls) == 1:
            first_running.set()
            time.sleep(0.3)
            raise BackendError("upstream said no")
        return image(task, b"\x89PNG second")

    services.provider.behaviour = fails_first
    first, second = one_after_another(services, SEEDED, SEEDED)

    leader = in_thread(lambda: services.executor.run(first.id))
    assert first_running.wait(5)
    follower = in_thread(lambda: services.executor.run(second.id))
    leader.join(10)
    follower.join(10)

    assert job(services, first.id).status == "failed"
    computed = job(services, second.id)
    assert (computed.status, computed.cached) == ("succeeded", False)
    assert len(calls) == 2


def test_canceling_a_waiting_job_cancels_it(services: Services) -> None:
    release = threading.Event()

    def held(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        assert release.wait(10)
        return image(task)

    services.provider.behaviour = held
    first, second = one_after_another(services, SEEDED, SEEDED)
    leader = in_thread(lambda: services.executor.run(first.id))
    wait_for(lambda: services.provider.runs == 1, "the first job computes")
    follower = in_thread(lambda: services.executor.run(second.id))
    wait_for(lambda: job(services, second.id).status == "running", "the second job runs")
    time.sleep(0.1)  # it waits for the first

    services.jobs.cancel(CALLER, second.id)
    follower.join(5)

    assert not follower.is_alive()
    assert job(services, second.id).status == "canceled"
    assert job(services, first.id).status == "running"  # still computing, alone
    release.set()
    leader.join(10)
    assert job(services, first.id).status == "succeeded"
    assert services.provider.runs == 1


@pytest.mark.parametrize("command", ["unseeded", "bypassing"])
def test_an_unseeded_or_cache_bypassing_request_never_waits(
    services: Services, command: str
) -> None:
    release = hold_first_run(services)
    other = (
        ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
        if command == "unseeded"
        else replace(SEEDED, use_cache=False)
    )
    first, second = one_after_another(services, SEEDED, other)
    leader = in_thread(lambda: services.executor.run(first.id))
    wait_for(lambda: services.provider.runs == 1, "the first job computes")

    services.executor.run(second.id)  # in this thread: it would hang here if it waited

    ended = job(services, second.id)
    assert (ended.status, ended.cached, ended.cache_bypassed) == (
        "succeeded", False, command == "bypassing",
    )  # fmt: skip
    assert job(services, first.id).status == "running"
    release.set()
    leader.join(10)
    assert services.provider.runs == 2


def test_a_job_waits_only_briefly_for_an_older_one_still_queued(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker thread is not held for a job queued behind it: with every thread of a pool
    taken by such waiting jobs, the one they wait for would never run."""
    monkeypatch.setattr(execution, "FOLLOW_QUEUED_LIMIT", 0.2)
    first, second = one_after_another(services, SEEDED, SEEDED)  # the first is never taken

    started = time.monotonic()
    services.executor.run(second.id)

    assert time.monotonic() - started < 5
    ended = job(services, second.id)
    assert (ended.status, ended.cached) == ("succeeded", False)
    assert job(services, first.id).status == "queued"
    services.executor.run(first.id)  # taken at last: the result is there by now
    assert job(services, first.id).cached
    assert services.provider.runs == 1


def test_a_job_never_waits_for_a_newer_one(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution, "FOLLOW_QUEUED_LIMIT", 0.1)  # the newer one starts soon
    release = hold_first_run(services)
    first, second = one_after_another(services, SEEDED, SEEDED)
    newer = in_thread(lambda: services.executor.run(second.id))
    wait_for(lambda: services.provider.runs == 1, "the newer job computes")

    services.executor.run(first.id)  # the older one does not wait for it: it computes too

    assert (job(services, first.id).status, job(services, first.id).cached) == ("succeeded", False)
    release.set()
    newer.join(10)
    assert services.provider.runs == 2
