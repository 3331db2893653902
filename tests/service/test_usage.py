"""Usage reports (issue 20, item 5): summed per tenant, day and model as jobs settle, in the
transaction that settles the ledger, and read from those sums alone, by an index."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select

from pixelgate.db.rows import table
from pixelgate.db.tables import LedgerEntry, UsageDaily
from pixelgate.errors import BackendError
from pixelgate.providers import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.service.access import Principal
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import Services
from tests.service.test_query_plans import assert_served_by_indexes, recorded

PRICES = {"test/fixture": {"default": "0.25"}, "test/kontext": {"default": "0.10"}}


def tenant(services: Services, tenant_id: str, **changes: Any) -> Principal:
    services.tenants.create(
        tenant_id=tenant_id, name=tenant_id, changes=TenantChanges(prices=PRICES, **changes)
    )
    return Principal(f"key_{tenant_id}", tenant_id, frozenset({"generate", "read"}))


def run(services: Services, caller: Principal, model: str = "test/fixture", **options: Any) -> str:
    command = ImageCommand(task="generate", model=model, options={"prompt": "x", **options})
    job = services.jobs.submit(caller, command)
    if job.status == "queued":
        services.executor.run(job.id)
    return job.id


def ledger_settlements(services: Services, tenant_id: str) -> dict[str, dict[str, int]]:
    """The ledger's settlements by model, summed here: what the report must equal."""
    with services.db.session() as session:
        rows = session.execute(
            select(
                LedgerEntry.model,
                func.sum(LedgerEntry.amount),
                func.sum(LedgerEntry.images),
                func.count(),
            )
            .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.kind == "settle")
            .group_by(LedgerEntry.model)
        ).all()
    return {
        model: {"spent": int(spent), "images": int(images), "jobs": int(jobs)}
        for model, spent, images, jobs in rows
    }


def refuse(
    task: ImageTask, progress: ProgressCallback, cancel: CancelToken
) -> list[GeneratedImage]:
    raise BackendError("no")


def test_the_report_equals_the_ledger_after_a_mix_of_jobs(services: Services) -> None:
    caller = tenant(services, "acme", cache_policy="charge")
    run(services, caller, n=3)  # succeeded: 3 images
    run(services, caller, seed=4)  # succeeded, then served from the cache (charged) below
    run(services, caller, seed=4)
    run(services, caller, "test/kontext")
    services.clock.advance(86400)  # another day
    run(services, caller, n=2)
    services.provider.behaviour = refuse
    run(services, caller, n=2)  # failed: refunded, settled at nothing
    canceled = services.jobs.submit(
        caller, ImageCommand(task="generate", model="test/fixture", options={"prompt": "c"})
    )
    services.jobs.cancel(caller, canceled.id)
    free = tenant(services, "free")  # a free cache hit reserves and settles nothing
    run(services, free, seed=4)

    report = services.billing.usage(services.tenants.get("acme"), days=30)

    expected = ledger_settlements(services, "acme")
    assert report.by_model == expected
    assert expected["test/fixture"] == {"spent": 1_750_000, "images": 7, "jobs": 6}
    assert report.spent == sum(bucket["spent"] for bucket in expected.values())
    assert report.images == 8 and report.jobs == 7
    today, yesterday = services.clock.now().date(), services.clock.now().date() - timedelta(1)
    assert report.by_day == {
        yesterday.isoformat(): {"spent": 1_350_000, "images": 6, "jobs": 4},
        today.isoformat(): {"spent": 500_000, "images": 2, "jobs": 3},
    }
    assert services.billing.usage(services.tenants.get("acme"), days=1).by_day == {
        today.isoformat(): {"spent": 500_000, "images": 2, "jobs": 3}
    }
    assert report.since.date() == today - timedelta(days=29)


def test_settlements_of_one_day_and_model_at_once_all_count(services: Services) -> None:
    """Many jobs settle at the same moment, the day's row not yet made: the upsert makes it
    once and adds every one (on PostgreSQL, concurrent transactions)."""
    caller = tenant(services, "acme")
    jobs = [
        services.jobs.submit(
            caller, ImageCommand(task="generate", model="test/fixture", options={"prompt": "x"})
        ).id
        for _ in range(12)
    ]
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def settle(job_id: str) -> None:
        try:
            with services.db.connection() as connection:
                start.wait(5)
                services.billing.finish(connection, job_id, produced=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    with services.db.session() as session:
        [row] = session.scalars(select(UsageDaily)).all()
    assert (row.spent, row.images, row.jobs) == (12 * 250_000, 12, 12)
    assert ledger_settlements(services, "acme")["test/fixture"]["spent"] == 12 * 250_000


def test_the_usage_read_is_served_by_the_index(services: Services) -> None:
    caller = tenant(services, "acme")
    run(services, caller)
    start = services.clock.now().date() - timedelta(days=2000)
    rows = [
        {
            "tenant_id": tenant_id,
            "day": (start + timedelta(days=number)).isoformat(),
            "model": model,
            "spent": 1,
            "images": 1,
            "jobs": 1,
        }
        for tenant_id in ("acme", "default")
        for number in range(1960)  # up to 41 days ago: none in the report
        for model in ("test/fixture", "test/kontext")
    ]
    with services.db.engine.begin() as connection:
        connection.execute(insert(table(UsageDaily)), rows)
        if not services.db.is_sqlite:
            connection.exec_driver_sql("ANALYZE")

    with recorded(services.db) as reads:
        report = services.billing.usage(services.tenants.get("acme"), days=30)
    assert report.images == 1
    usage_reads = [(sql, params) for sql, params in reads if "usage_daily" in sql]
    assert usage_reads
    assert_served_by_indexes(services.db, usage_reads)
