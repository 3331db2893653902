"""Leases, taking jobs back from dead workers, retries of transient failures, resending."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from pixelgate.errors import Canceled, Timeout
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.execution import JobExecutor
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.maintenance import Maintenance
from tests.service.conftest import Services

CALLER = Principal("key_test", "default", frozenset({"admin"}))


def submit(services: Services) -> str:
    command = ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
    return services.jobs.submit(CALLER, command).id


def executor(services: Services, worker_id: str, *, lease: float = 30.0) -> JobExecutor:
    return JobExecutor(
        services.collaborators,
        worker_id=worker_id,
        lease_seconds=lease,
        max_attempts=3,
        requeue=services.queue.enqueue,
        keys=services.tenants.keys,
    )


def maintenance(services: Services) -> Maintenance:
    return Maintenance(
        services.store,
        services.queue.enqueue,
        services.clock,
        max_attempts=3,
        requeue_after=timedelta(seconds=60),
    )


def test_a_job_whose_worker_died_is_taken_back_and_finished_once_by_another(
    services: Services,
) -> None:
    job_id = submit(services)
    now = services.clock.now()
    services.store.transition(  # worker "a" claimed it, then died
        job_id,
        to=JobStatus.RUNNING,
        allowed_from=(JobStatus.QUEUED,),
        worker_id="a",
        attempts=1,
        lease_expires_at=now + timedelta(seconds=30),
    )
    assert maintenance(services).take_back_expired() == 0  # the lease still runs
    services.clock.advance(31)
    services.queue.job_ids.clear()

    assert maintenance(services).take_back_expired() == 1
    assert services.queue.job_ids == [job_id]
    assert services.jobs.get(CALLER, job_id).status == "queued"

    executor(services, "b").run(job_id)
    job = services.jobs.get(CALLER, job_id)
    assert (job.status, job.worker_id, job.attempts) == ("succeeded", "b", 2)
    late = services.store.transition(  # "a" was only slow, and now tries to finish
        job_id, to=JobStatus.FAILED, allowed_from=(JobStatus.RUNNING,), held_by="a"
    )
    assert late is False
    assert services.jobs.get(CALLER, job_id).status == "succeeded"


def test_a_running_worker_keeps_its_lease_and_hears_a_cancel_from_anywhere(
    services: Services,
) -> None:
    started = threading.Event()

    def slow(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        started.set()
        deadline = time.monotonic() + 5
        while not cancel.canceled and time.monotonic() < deadline:
            time.sleep(0.02)
        if cancel.canceled:
            raise Canceled("Job canceled")
        return [GeneratedImage(b"png", "image/png", 8, 8)]

    services.provider.behaviour = slow
    job_id = submit(services)
    worker = executor(services, "a", lease=0.3)
    runner = threading.Thread(target=worker.run, args=(job_id,))
    runner.start()
    started.wait(5)
    time.sleep(0.25)
    job = services.jobs.get(CALLER, job_id)
    assert job.lease_expires_at is not None
    assert worker.running == [job_id]
    # a cancel recorded by another process reaches the worker through its lease renewals
    services.store.request_cancel(job_id)
    runner.join(5)

    assert services.jobs.get(CALLER, job_id).status == "canceled"
    assert worker.running == []


def test_a_transient_failure_is_retried_then_succeeds(services: Services) -> None:
    failures = iter([Timeout("upstream slow")])

    def flaky(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        for error in failures:
            raise error
        return [GeneratedImage(b"png", "image/png", 8, 8)]

    services.provider.behaviour = flaky
    job_id = submit(services)
    services.queue.job_ids.clear()
    worker = executor(services, "a")
    worker.run(job_id)
    assert services.jobs.get(CALLER, job_id).status == "queued"
    assert services.queue.job_ids == [job_id]
    worker.run(job_id)

    job = services.jobs.get(CALLER, job_id)
    assert (job.status, job.attempts) == ("succeeded", 2)
    types = [event.type for event in services.store.events_after(job_id, None)]
    assert types == ["queued", "running", "queued", "running", "succeeded"]


def test_a_failure_that_keeps_coming_back_fails_with_its_reason(services: Services) -> None:
    def always(
        task: ImageTask, progress: ProgressCallback, cancel: CancelToken
    ) -> list[GeneratedImage]:
        raise Timeout("upstream slow")

    services.provider.behaviour = always
    job_id = submit(services)
    worker = executor(services, "a")
    for _ in range(5):
        worker.run(job_id)

    job = services.jobs.get(CALLER, job_id)
    assert (job.status, job.attempts, job.error_code) == ("failed", 3, "TIMEOUT")
    assert job.error_message == "upstream slow"


def test_queued_jobs_not_taken_in_time_are_handed_over_again(services: Services) -> None:
    job_id = submit(services)
    services.queue.job_ids.clear()
    assert maintenance(services).resend_waiting() == 0
    services.clock.advance(61)
    assert maintenance(services).resend_waiting() == 1
    assert services.queue.job_ids == [job_id]
    assert maintenance(services).resend_waiting() == 0  # not again before its time
