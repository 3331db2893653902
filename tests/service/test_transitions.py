"""A job's state changes reuse one statement per shape of change; each still changes only its
own job, with its own values, and only from the allowed state and holder."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import inspect

from pixelgate.db.job_records import JobResult, ResultImage
from pixelgate.db.rows import values_of
from pixelgate.db.tables import Job
from pixelgate.service.access import Principal
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services

CALLER = Principal("key_test", "default", frozenset({"admin"}))
RUNNING, QUEUED, FAILED = JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.FAILED


def submit(services: Services, prompt: str) -> str:
    command = ImageCommand(task="generate", model="test/fixture", options={"prompt": prompt})
    return services.jobs.submit(CALLER, command).id


def test_changes_of_one_shape_each_change_their_own_job_with_their_own_values(
    services: Services,
) -> None:
    first, second = submit(services, "a"), submit(services, "b")
    until = services.clock.now() + timedelta(seconds=30)
    for job_id, worker in ((first, "w1"), (second, "w2")):
        assert services.store.transition(
            job_id, to=RUNNING, allowed_from=(QUEUED,), worker_id=worker, lease_expires_at=until
        )
    # the same shape again, from a state the job is no longer in: refused
    assert not services.store.transition(
        first, to=RUNNING, allowed_from=(QUEUED,), worker_id="w3", lease_expires_at=until
    )
    for job_id, worker, message in ((first, "w1", "one"), (second, "w2", "two")):
        assert services.store.transition(
            job_id,
            to=FAILED,
            allowed_from=(RUNNING,),
            held_by=worker,
            error_code="X",
            error_message=message,
        )
    one, two = services.store.load(first), services.store.load(second)
    assert one is not None and two is not None
    assert (one.status, one.worker_id, one.error_message) == ("failed", "w1", "one")
    assert (two.status, two.worker_id, two.error_message) == ("failed", "w2", "two")
    assert one.finished_at is not None and one.lease_expires_at is None


def test_a_reused_change_still_checks_who_holds_the_job(services: Services) -> None:
    first, second = submit(services, "a"), submit(services, "b")
    until = services.clock.now() + timedelta(seconds=30)
    for job_id in (first, second):
        services.store.transition(
            job_id, to=RUNNING, allowed_from=(QUEUED,), worker_id="w1", lease_expires_at=until
        )
    ended: dict[str, Any] = {"error_code": "X", "error_message": "m"}
    assert services.store.transition(
        first, to=FAILED, allowed_from=(RUNNING,), held_by="w1", **ended
    )
    # same shape, another holder: the statement is reused, the holder is still compared
    assert not services.store.transition(
        second, to=FAILED, allowed_from=(RUNNING,), held_by="w2", **ended
    )
    job = services.store.load(second)
    assert job is not None and job.status == "running"


def test_a_records_insert_takes_the_attributes_set_by_column() -> None:
    values = {"id": "job_1", "status": "queued", "metadata_": {"user": "u"}, "attempts": 0}
    built = Job(**values)
    assert inspect(built).transient
    assert values_of(built) == {
        "id": "job_1",
        "status": "queued",
        "metadata": {"user": "u"},
        "attempts": 0,
    }  # unset columns are left to their defaults
    assert built.started_at is None and built.worker_id is None


def test_the_ended_job_handed_on_carries_what_its_settlement_charged(services: Services) -> None:
    services.tenants.create(
        tenant_id="payer",
        name="payer",
        changes=TenantChanges(prices={"test/fixture": {"default": "0.25"}}),
    )
    payer = Principal("key_payer", "payer", frozenset({"generate", "read"}))
    command = ImageCommand(task="generate", model="test/fixture", options={"prompt": "p", "n": 2})
    paid, refunded = (services.jobs.submit(payer, command).id for _ in range(2))
    now = services.clock.now()
    for job_id in (paid, refunded):
        services.store.claim(
            job_id, worker_id="w", now=now, lease_until=now + timedelta(seconds=30)
        )
    one_image = JobResult(created=1, images=(ResultImage(file_id="file_1", seed=1),))

    ended = services.store.end(paid, to=JobStatus.SUCCEEDED, held_by="w", result=one_image)
    failed = services.store.end(refunded, to=FAILED, held_by="w", error_code="X")

    assert ended is not None and failed is not None
    assert (ended.cost, failed.cost) == (250_000, 0)  # one image of two made; nothing
    stored = services.store.load(paid)
    assert stored is not None and stored.cost == 250_000
