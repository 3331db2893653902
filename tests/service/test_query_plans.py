"""A request's queries cost the same however many jobs are stored (issue 20, item 1): every
query on the path of a generation (computed, or served from the cache), of the job list and of
the result cache is served by an index, with no scan of a table and no sort. The plans are the
databases' own (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL), read over a history
of stored jobs and cache hits, for the statements the services really send."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from pixelgate.catalog import Catalog
from pixelgate.db import Database
from pixelgate.db.rows import table
from pixelgate.db.tables import Job, StoredFile
from pixelgate.service.access import Principal
from pixelgate.service.cache import ResultCache
from pixelgate.service.history import Filters, History
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.tenants import TenantChanges
from tests.service.conftest import FIXTURE_MODEL, Services

CALLER = Principal("key_test", "default", frozenset({"admin"}))
SEEDED = ImageCommand(task="generate", model="test/fixture", options={"prompt": "x", "seed": 3})
UNSEEDED = ImageCommand(task="generate", model="test/fixture", options={"prompt": "y"})
HISTORY = 3000
"""Stored jobs: enough that PostgreSQL's planner prefers an index where one serves."""


def history(services: Services, hit: Job) -> None:
    """Jobs of two tenants, done long ago, a third of them the default tenant's cache hits of
    `hit` (the same key, `cached`); on PostgreSQL with the statistics it keeps."""
    services.tenants.create(tenant_id="other", name="other", changes=TenantChanges())
    start = services.clock.now() - timedelta(days=3)
    rows: list[dict[str, Any]] = []
    for number in range(HISTORY):
        at = start + timedelta(seconds=number)
        copy = number % 3 == 0
        rows.append(
            {
                "id": f"job_{secrets.token_hex(12)}",
                "tenant_id": "default" if number % 2 == 0 or copy else "other",
                "api_key_id": "key_test",
                "task": "generate",
                "model": "test/fixture",
                "status": "succeeded" if number % 7 else "failed",
                "options": hit.options,
                "inputs": None,
                "response_format": "url",
                "metadata": None,
                "result": hit.result if copy else None,
                "attempts": 1,
                "cancel_requested": False,
                "cache_key": hit.cache_key if copy else secrets.token_hex(32),
                "cached": copy,
                "cache_bypassed": False,
                "created_at": at,
                "started_at": at,
                "finished_at": at,
            }
        )
    with services.db.engine.begin() as connection:
        connection.execute(insert(table(Job)), rows)
        if not services.db.is_sqlite:  # SQLite is never analyzed in use: no statistics
            connection.exec_driver_sql("ANALYZE")


def computed_with_history(services: Services) -> Job:
    """A computed job of the caller's (cacheable), then a `history` of jobs over it."""
    first = services.jobs.submit(CALLER, SEEDED)
    services.executor.run(first.id)
    computed = services.jobs.get(CALLER, first.id)
    history(services, computed)
    return computed


@contextmanager
def recorded(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The statements sent to `db` meanwhile (one set of parameters each), reads and updates."""
    statements: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("SELECT", "UPDATE", "DELETE") and not args[-1]:  # not an executemany
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def plan(db: Database, statement: str, parameters: Any) -> list[str]:
    """The database's plan of the statement, one line per step.

    PostgreSQL rightly reads a table of a few rows (the tenants) whole; told to avoid scans and
    sorts at any cost, it still scans or sorts where no index serves the query."""
    with db.engine.connect() as connection:
        if db.is_sqlite:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            connection.exec_driver_sql("SET LOCAL enable_sort = off")
            # a sort of rows an index hands over partly ordered is a sort too
            connection.exec_driver_sql("SET LOCAL enable_incremental_sort = off")
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        return [str(row[-1]) for row in rows.all()]


def costly_steps(db: Database, steps: list[str]) -> list[str]:
    """The steps whose cost grows with the rows stored: a scan of a whole table (or of a whole
    index) or a sort."""
    if db.is_sqlite:
        return [s for s in steps if s.startswith("SCAN") or "TEMP B-TREE" in s]
    costly = [s for s in steps if "Seq Scan" in s or "Sort Key" in s]
    scans = [s for s in steps if "Index Scan" in s or "Index Only Scan" in s]
    conditions = [s for s in steps if "Index Cond" in s]
    if len(conditions) < len(scans):  # an index read whole, in its order
        costly.append("an index scan without a condition: " + "; ".join(scans))
    return costly


def assert_served_by_indexes(db: Database, statements: list[tuple[str, Any]]) -> None:
    assert statements
    problems = []
    for statement, parameters in statements:
        steps = plan(db, statement, parameters)
        if costly := costly_steps(db, steps):
            problems.append(f"{statement}\n  -> {costly}\n  plan: {steps}")
    assert not problems, "\n\n".join(problems)


def test_a_generation_and_a_cache_hit_neither_scan_nor_sort(
    services: Services,
) -> None:
    computed_with_history(services)
    services.clock.advance(1)

    with recorded(services.db) as hit_path:
        assert services.jobs.submit(CALLER, SEEDED).cached
    with recorded(services.db) as computed_path:
        job = services.jobs.submit(CALLER, UNSEEDED)
        services.executor.run(job.id)
        services.jobs.outputs(services.jobs.get(CALLER, job.id))

    assert_served_by_indexes(services.db, hit_path)
    assert_served_by_indexes(services.db, computed_path)


@pytest.mark.parametrize("shared", [False, True], ids=["per tenant", "shared"])
def test_the_cache_reads_its_index_in_order_however_many_hits_it_served(
    services: Services, shared: bool
) -> None:
    computed = computed_with_history(services)
    assert computed.cache_key is not None
    cache = ResultCache(
        services.db, services.files, services.billing, services.clock, shared=shared
    )

    with recorded(services.db) as lookups:
        found = cache.lookup("default", computed.cache_key)
        flying = cache.in_flight("default", computed.cache_key)
        older = cache.in_flight("default", computed.cache_key, before=computed)
    # the computed job is found, not one of the hits over its images
    assert (found is not None and found.id, flying, older) == (computed.id, None, None)
    assert_served_by_indexes(services.db, lookups)


def test_counting_a_tenants_active_jobs_reads_only_active_jobs(services: Services) -> None:
    computed_with_history(services)

    with recorded(services.db) as counts:
        assert services.store.count_active(tenant_id="default") == 0
        assert services.store.count_active(api_key_id="key_test") == 0
    assert_served_by_indexes(services.db, counts)


def stored_files(services: Services) -> None:
    """A file for every stored job, created with it (issue 20, items 2 and 3)."""
    with services.db.engine.begin() as connection:
        jobs = connection.execute(select(Job.id, Job.tenant_id, Job.created_at)).all()
        connection.execute(
            insert(table(StoredFile)),
            [
                {
                    "id": f"file_{secrets.token_hex(12)}",
                    "tenant_id": tenant_id,
                    "job_id": job_id,
                    "blob_key": secrets.token_hex(32),
                    "content_type": "image/png",
                    "size_bytes": 10,
                    "width": 8,
                    "height": 8,
                    "created_at": at,
                    "expires_at": at + timedelta(days=30),
                }
                for job_id, tenant_id, at in jobs
            ],
        )
        if not services.db.is_sqlite:
            connection.exec_driver_sql("ANALYZE")


def test_pages_of_jobs_and_files_read_an_index_in_order_with_every_filter(
    services: Services,
) -> None:
    first = computed_with_history(services)
    stored_files(services)
    catalog = Catalog([*Catalog.load(), FIXTURE_MODEL])
    pages = History(services.db, services.files, catalog, services.clock)
    jobs = pages.jobs("default", Filters(limit=5))
    files = pages.files("default", Filters(limit=5))
    since = services.clock.now() - timedelta(days=2)
    until = services.clock.now() - timedelta(days=1)
    each = [
        Filters(),
        Filters(status=JobStatus.FAILED),
        Filters(model="test/fixture"),
        Filters(created_after=since, created_before=until),
        Filters(q="X"),
        Filters(status=JobStatus.SUCCEEDED, model="test/fixture", q="x", created_after=since),
    ]

    with recorded(services.db) as job_pages:
        for filters in each:
            for cursor in ({}, {"after": jobs.items[-1].id}, {"before": jobs.items[-1].id}):
                pages.jobs("default", replace(filters, limit=20, **cursor))  # type: ignore[arg-type]
    with recorded(services.db) as file_pages:
        for filters in [*each[2:], Filters(job_id=first.id)]:
            last = files.items[-1].record.id
            for cursor in ({}, {"after": last}, {"before": last}):
                pages.files("default", replace(filters, limit=20, **cursor))  # type: ignore[arg-type]
    with recorded(services.db) as deletes:
        pages.delete_file("default", files.items[0].record.id)
        pages.delete_job("default", jobs.items[-1].id)

    assert_served_by_indexes(services.db, job_pages)
    assert_served_by_indexes(services.db, file_pages)
    assert_served_by_indexes(services.db, deletes)
