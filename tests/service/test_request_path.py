"""What the request path keeps for speed keeps its guarantees: a claim takes a job once, a new
month's budget account is reserved once, keys and tenants changed here apply at once, and a
late waiter still hears a job that ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select, update

from pixelgate.clock import ManualClock
from pixelgate.db.tables import ApiKey, BudgetAccount
from pixelgate.engine import EventBus, JobEventMessage
from pixelgate.errors import ModelAccessDenied, Unauthorized
from pixelgate.service.billing import month_of
from pixelgate.service.job_store import JobStatus
from pixelgate.service.recent import ReadLately
from pixelgate.service.tenants import TenantChanges, TenantService
from tests.service.conftest import Services
from tests.service.test_policies import PRICED, command, ledger, tenant


def accounts(services: Services, tenant_id: str) -> dict[str, tuple[int, int]]:
    """(spent, reserved) by period."""
    with services.db.session() as session:
        rows = session.scalars(select(BudgetAccount).where(BudgetAccount.tenant_id == tenant_id))
        return {row.period: (row.spent, row.reserved) for row in rows}


def test_a_claim_takes_a_queued_job_once_and_records_the_attempt(services: Services) -> None:
    caller = tenant(services)
    job = services.jobs.submit(caller, command())
    now = services.clock.now()

    claimed = services.store.claim(job.id, worker_id="w", now=now, lease_until=now)
    again = services.store.claim(job.id, worker_id="other", now=now, lease_until=now)

    assert claimed is not None and again is None
    assert (claimed.status, claimed.attempts, claimed.worker_id) == ("running", 1, "w")
    events = services.store.events_after(job.id, None)
    assert [(event.type, event.data) for event in events] == [
        ("queued", {}),
        ("running", {"attempt": 1}),
    ]


def test_the_end_of_a_job_carries_the_ended_record(services: Services) -> None:
    caller = tenant(services)
    job = services.jobs.submit(caller, command())
    services.executor.run(job.id)

    async def hear() -> JobEventMessage:
        subscription = services.jobs._bus.subscribe(job.id)
        try:
            return await subscription.next(1)
        finally:
            subscription.close()

    ended = asyncio.run(hear())  # the bus keeps the latest endings for late subscribers
    assert ended.type == "succeeded"
    record = ended.snapshot
    assert record is not None and getattr(record, "status", None) == JobStatus.SUCCEEDED
    assert record.result == services.jobs.get(caller, job.id).result  # type: ignore[attr-defined]


def test_a_job_s_end_writes_its_row_once_with_its_cost(services: Services) -> None:
    caller = tenant(services, **PRICED)
    job = services.jobs.submit(caller, command())
    updates: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE JOBS"):
            updates.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", before)
    try:
        services.executor.run(job.id)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", before)

    assert len(updates) == 2  # the claim; the end, with the settled cost
    ended = services.jobs.get(caller, job.id)
    assert (ended.status, ended.cost) == ("succeeded", 250_000)


def test_an_end_that_does_not_move_the_job_writes_nothing(services: Services) -> None:
    caller = tenant(services, **PRICED)
    job = services.jobs.submit(caller, command())
    now = services.clock.now()
    services.store.claim(job.id, worker_id="w", now=now, lease_until=now)

    ended = services.store.end(
        job.id, to=JobStatus.FAILED, held_by="not-w", error_code="INTERNAL_ERROR"
    )

    assert ended is None
    assert ledger(services, "acme") == {"reserve": 250_000}  # nothing settled, nothing refunded
    assert services.jobs.get(caller, job.id).status == JobStatus.RUNNING
    assert [event.type for event in services.store.events_after(job.id, None)] == [
        "queued",
        "running",
    ]


def test_a_new_month_reserves_against_both_accounts_once(services: Services) -> None:
    caller = tenant(services, **PRICED)
    first_month = month_of(services.clock.now())
    services.executor.run(services.jobs.submit(caller, command()).id)
    services.clock.advance(40 * 86400)  # next month: its account does not exist yet
    next_month = month_of(services.clock.now())

    services.jobs.submit(caller, command())

    assert accounts(services, "acme") == {
        "total": (250_000, 250_000),
        first_month: (250_000, 0),
        next_month: (0, 250_000),
    }


def test_a_key_revoked_here_is_refused_at_once(services: Services) -> None:
    record, key = services.access.create_key(
        tenant_id="default", name="k", scopes=frozenset({"read"})
    )
    services.access.authenticate(f"Bearer {key}")  # now trusted for a moment
    services.access.revoke(record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        services.access.authenticate(f"Bearer {key}")


def test_a_key_revoked_elsewhere_is_refused_once_the_trusted_time_passes(
    services: Services,
) -> None:
    record, key = services.access.create_key(
        tenant_id="default", name="k", scopes=frozenset({"read"})
    )
    services.access.authenticate(f"Bearer {key}")
    with services.db.session() as session:  # as another process would
        session.execute(
            update(ApiKey).where(ApiKey.id == record.id).values(revoked_at=services.clock.now())
        )
    services.clock.advance(1.9)
    services.access.authenticate(f"Bearer {key}")  # within the trusted time: still trusted
    services.clock.advance(0.1)
    with pytest.raises(Unauthorized, match="revoked"):
        services.access.authenticate(f"Bearer {key}")


def test_a_tenant_changed_elsewhere_applies_once_the_trusted_time_passes(
    services: Services,
) -> None:
    caller = tenant(services)
    services.jobs.submit(caller, command())
    # another replica
    elsewhere = TenantService(services.db, services.clock, keys=services.tenants.keys)
    elsewhere.update("acme", TenantChanges(deny_models=["test/*"]))
    services.jobs.submit(caller, command())  # read lately here: still as it was
    services.clock.advance(2)
    with pytest.raises(ModelAccessDenied):
        services.jobs.submit(caller, command())


def test_what_was_read_lately_is_not_trusted_across_a_clock_set_back() -> None:
    clock = ManualClock()
    reads: ReadLately[str, str] = ReadLately(clock)
    reads.remember("k", "v")
    assert reads.get("k") == "v"
    clock.advance(-60)
    assert reads.get("k") is None
    reads.remember("k", "w")
    clock.advance(1.99)
    assert reads.get("k") == "w"
    reads.forget("k")
    assert reads.get("k") is None


def test_a_tenant_changed_here_applies_to_the_next_request(services: Services) -> None:
    caller = tenant(services)
    services.jobs.submit(caller, command())
    services.tenants.update("acme", TenantChanges(deny_models=["test/*"]))
    with pytest.raises(ModelAccessDenied):
        services.jobs.submit(caller, command())


def test_a_subscriber_after_the_end_hears_it_at_once() -> None:
    async def scenario() -> str:
        bus = EventBus()
        bus.publish(JobEventMessage("job_1", "running", id=1))
        bus.publish(JobEventMessage("job_1", "succeeded", id=2))
        subscription = bus.subscribe("job_1")
        try:
            return (await subscription.next(1)).type
        finally:
            subscription.close()

    assert asyncio.run(scenario()) == "succeeded"
