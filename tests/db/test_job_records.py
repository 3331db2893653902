"""A job's JSON columns hold typed records (`db.job_records`): what pixelgate wrote before they
were typed reads back as records, and what it writes now has the same JSON shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, DateTime, column, insert, select, table

from pixelgate.db import Database
from pixelgate.db.job_records import (
    Adjustment,
    JobInputs,
    JobOptions,
    JobResult,
    JobRoute,
    ResultImage,
    RouteCandidate,
    RouteTry,
    StoredInput,
)
from pixelgate.db.rows import values_of
from pixelgate.db.tables import Job, Tenant
from pixelgate.service.job_store import JOBS
from tests.databases import ENGINES, open_database

NOW = datetime(2026, 12, 1, tzinfo=UTC)

# JSON as versions before the records wrote it, keys in their order
OLD_INPUTS = {
    "image": {
        "blob_key": "b1",
        "content_type": "image/jpeg",
        "width": 96,
        "height": 64,
        "adjustment": {"param": "image", "from": "96x64", "to": "96x96", "reason": "square"},
    },
    "mask": {"blob_key": "b2", "content_type": "image/png", "width": 96, "height": 64},
    "adjustments": [{"param": "size", "from": "1000x600", "to": "16:9", "reason": "ratio"}],
}
OLD_OPTIONS = {"prompt": "a boat", "width": 64, "height": 48, "seed": 7, "user": "u-1"}
OLD_RESULT = {
    "created": 1764547200,
    "images": [
        {"file_id": "file_a", "seed": 7, "revised_prompt": None},
        {"file_id": "file_b", "seed": 8, "revised_prompt": "a red boat"},
    ],
}


@pytest.fixture(params=ENGINES)
def database(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    database = open_database(request.param, tmp_path, request)
    with database.session() as session:
        session.add(Tenant(id="t", name="t", created_at=NOW))
    yield database
    database.dispose()


PLAIN_JOBS = table(
    "jobs",
    *(column(name) for name in ("id", "tenant_id", "task", "model", "status", "response_format")),
    *(column(name) for name in ("attempts", "cancel_requested", "cached", "cache_bypassed")),
    column("created_at", DateTime(timezone=True)),
    *(column(name, JSON) for name in ("options", "inputs", "result")),
)
"""The jobs table as plain JSON columns: rows as older versions (or other tools) wrote them."""


def insert_raw(database: Database, job_id: str, **json: Any) -> None:
    row = {
        "id": job_id, "tenant_id": "t", "task": "edit", "model": "m", "status": "succeeded",
        "response_format": "url", "attempts": 1, "cancel_requested": False, "cached": False,
        "cache_bypassed": False, "created_at": NOW,
    }  # fmt: skip
    with database.engine.begin() as connection:
        connection.execute(insert(PLAIN_JOBS), {**row, **json})


def stored_json(database: Database, job_id: str) -> dict[str, Any]:
    """The job's JSON columns as the database holds them."""
    columns = PLAIN_JOBS.c.options, PLAIN_JOBS.c.inputs, PLAIN_JOBS.c.result
    with database.engine.connect() as connection:
        row = connection.execute(select(*columns).where(PLAIN_JOBS.c.id == job_id)).one()
    return dict(row._mapping)


def test_rows_written_before_the_records_read_back_as_records(database: Database) -> None:
    insert_raw(database, "job_old", options=OLD_OPTIONS, inputs=OLD_INPUTS, result=OLD_RESULT)

    with database.session() as session:
        job = session.get(Job, "job_old")
    assert job is not None
    assert job.inputs == JobInputs(
        image=StoredInput(
            "b1", "image/jpeg", 96, 64, Adjustment("image", "96x64", "96x96", "square")
        ),
        mask=StoredInput("b2", "image/png", 96, 64),
        option_adjustments=(Adjustment("size", "1000x600", "16:9", "ratio"),),
    )
    assert [item.param for item in job.inputs.adjustments] == ["image", "size"]
    assert job.inputs.blob_keys == {"b1", "b2"}
    assert (job.options.prompt, job.options.user, job.options.size) == ("a boat", "u-1", "64x48")
    assert job.result == JobResult(
        created=1764547200,
        images=(ResultImage("file_a", 7, None), ResultImage("file_b", 8, "a red boat")),
    )


def test_missing_and_unknown_keys_are_tolerated(database: Database) -> None:
    insert_raw(
        database,
        "job_sparse",
        options={},
        inputs={"image": {"blob_key": "b", "content_type": "image/png", "width": 1, "height": 2}},
        result={"images": [{"file_id": "f", "later_key": 1}], "later": True},
    )
    insert_raw(database, "job_running", options={}, result={"upstream": {"0": {"id": "task-1"}}})

    with database.session() as session:
        sparse, running = session.get(Job, "job_sparse"), session.get(Job, "job_running")
    assert sparse is not None and running is not None
    assert sparse.result == JobResult(created=0, images=(ResultImage("f"),))
    assert sparse.inputs == JobInputs(image=StoredInput("b", "image/png", 1, 2))
    assert sparse.options == JobOptions({}) and sparse.options.size is None
    assert running.result == JobResult(upstream={"0": {"id": "task-1"}})


def test_records_are_written_in_the_shape_older_versions_read(database: Database) -> None:
    job = Job(
        id="job_new", tenant_id="t", task="edit", model="m", status="succeeded",
        response_format="url", attempts=1, cancel_requested=False, cached=False,
        cache_bypassed=False, created_at=NOW,
        options=JobOptions(OLD_OPTIONS),
        inputs=JobInputs.from_json(OLD_INPUTS),
        result=JobResult.from_json(OLD_RESULT),
    )  # fmt: skip
    with database.engine.begin() as connection:
        connection.execute(insert(JOBS), values_of(job))

    assert stored_json(database, "job_new") == {
        "options": OLD_OPTIONS,
        "inputs": OLD_INPUTS,
        "result": OLD_RESULT,
    }
    with database.session() as session:
        assert session.scalar(select(Job.result).where(Job.id == "job_new")) == job.result


def test_a_route_reads_back_as_written_and_moves_to_its_next_model(database: Database) -> None:
    route = JobRoute(
        requested="openai/dall-e-3",
        price=40_000,
        candidates=(
            RouteCandidate("bfl/flux-pro-1.1", {"prompt": "a boat", "seed": 7}, 40_000),
            RouteCandidate("local/tiny", {"prompt": "a boat", "width": 64}, 0),
        ),
        tries=(RouteTry("fal/flux-dev", "skipped", "VALIDATION_ERROR", "Unknown option"),),
    )
    job = Job(
        id="job_r", tenant_id="t", task="generate", model="openai/dall-e-3", status="queued",
        options=JobOptions({"prompt": "a boat"}), response_format="url", attempts=0,
        cancel_requested=False, cached=False, cache_bypassed=False, created_at=NOW, route=route,
    )  # fmt: skip
    with database.session() as session:
        session.add(job)

    with database.session() as session:
        loaded = session.get(Job, "job_r")
        assert loaded is not None and loaded.route == route
    failed = RouteTry("openai/dall-e-3", "failed", "RATE_LIMITED", "429")
    step = route.tried(failed).next_candidate()
    assert step is not None
    candidate, moved = step
    assert candidate.model == "bfl/flux-pro-1.1"
    assert (moved.requested, moved.price) == ("openai/dall-e-3", 40_000)
    assert [c.model for c in moved.candidates] == ["local/tiny"]
    assert moved.tries == (*route.tries, failed)
    last = moved.next_candidate()
    assert last is not None and last[1].next_candidate() is None
