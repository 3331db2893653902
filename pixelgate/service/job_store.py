"""A job's record and its state changes. Each change is a conditional update plus an event in
one transaction, published after commit; so a job moves only along the allowed edges:

    queued ──► running ──► succeeded | failed | canceled
      │           │
      │           └──► queued        (recovered after a crash)
      └──► canceled | failed
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Connection,
    Executable,
    bindparam,
    func,
    insert,
    select,
    update,
)

from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.job_records import JobResult
from pixelgate.db.rows import column_key, from_row, table, values_of
from pixelgate.db.tables import Job, JobEvent, JobInputBlob
from pixelgate.engine import EventBus, JobEventMessage


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


EndHook = Callable[[Connection, str, "JobStatus", dict[str, Any]], Mapping[str, Any] | None]
"""Called inside the transaction that ends a job, before the update that ends it: (connection, job
id, final status, the values it sets). What it returns is set by the same update (billing: the
job's cost), so one statement writes the job's row; what it writes stands or falls with the
ending (the transaction is rolled back when the job does not move)."""
FinishHook = Callable[[Connection, str, "JobStatus", dict[str, Any]], None]
"""Called inside the transaction that ends a job, once it has ended: (connection, job id, final
status, values); the values are those set, plus the job's `model` and `started_at` where the
database returned them."""


@dataclass(frozen=True)
class RecordedEvent:
    """An event of a job, as it is recorded."""

    job_id: str
    kind: str
    data: dict[str, Any]
    at: datetime
    job: Job | None
    """The job's record where the store holds it (it was just made, claimed or ended); None:
    a hook reads what it needs."""


EventHook = Callable[[Connection, RecordedEvent], Callable[[], None] | None]
"""Called inside the transaction that records an event of a job; what it returns is called
once that transaction has committed. The webhook outbox adds its deliveries here, and wakes its
sender once they are committed."""
ProgressHook = Callable[["Job", int, int], None]
"""Called when a job's progress is published: (the job, step, total)."""


ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)

NO_SYNC = {"synchronize_session": False}
"""State changes are conditional updates by id; no object of the session needs updating."""

# Every job's path (accept, claim, end) writes with Core statements (see `db.rows`); the
# fixed ones are built once.
JOBS = table(Job)
EVENTS = table(JobEvent)
INSERT_JOB = insert(JOBS)
INSERT_EVENT = insert(EVENTS)
INSERT_INPUT_BLOB = insert(table(JobInputBlob))


CLAIM = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"), JOBS.c.status == JobStatus.QUEUED.value)
    .values(
        status=JobStatus.RUNNING.value,
        started_at=bindparam("b_now"),
        attempts=JOBS.c.attempts + 1,
        worker_id=bindparam("b_worker"),
        lease_expires_at=bindparam("b_until"),
    )
)
CLAIM_RETURNING = CLAIM.returning(*JOBS.c)
JOB_BY_ID = select(JOBS).where(JOBS.c.id == bindparam("b_id"))


class _NotMoved(Exception):
    """The job is not in a state to move: what its transaction wrote is rolled back."""


def _add_event(
    connection: Connection, job_id: str, kind: str, data: dict[str, Any], at: datetime
) -> int:
    """Record an event of the job; returns its id."""
    result = connection.execute(
        INSERT_EVENT, {"job_id": job_id, "type": kind, "data": data, "created_at": at}
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


class JobStore:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        clock: Clock,
        *,
        on_end: Collection[EndHook] = (),
        on_finish: Collection[FinishHook] = (),
        on_event: Collection[EventHook] = (),
        on_progress: Collection[ProgressHook] = (),
    ) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock
        self._on_end = tuple(on_end)
        self._on_finish = tuple(on_finish)
        self._on_event = tuple(on_event)
        self._on_progress = tuple(on_progress)
        self._returning = bool(db.engine.dialect.update_returning)
        self._statements: dict[tuple[Any, ...], Executable] = {}
        """Conditional updates of `transition`, built once per shape of change."""

    def create(
        self,
        job: Job,
        *,
        event_data: dict[str, Any] | None = None,
        within: Callable[[Connection], None] | None = None,
        claimed_by: str | None = None,
        lease_until: datetime | None = None,
    ) -> None:
        """Record a new job and its first event; `within` runs in the same transaction, so
        what it does (a reservation, an idempotency record) stands or falls with the job.

        With `claimed_by`, a queued job is recorded as already claimed by that worker, leased
        until `lease_until`, as `claim` would leave it, with both events (queued, then
        running): the caller runs it itself, so no claim follows."""
        data = event_data or {}
        now = self._clock.now()
        events = [(str(job.status), data)]
        if claimed_by is not None:
            job.status = JobStatus.RUNNING
            job.worker_id = claimed_by
            job.lease_expires_at = lease_until
            job.started_at = now
            job.attempts += 1
            events.append((str(job.status), {"attempt": job.attempts}))
        with self._db.connection(writes=True) as connection:
            connection.execute(INSERT_JOB, values_of(job))
            keys = job.inputs.blob_keys if job.inputs is not None else set()
            if keys:  # which jobs need a blob (`service.erasure`)
                rows = [{"job_id": job.id, "blob_key": key} for key in sorted(keys)]
                connection.execute(INSERT_INPUT_BLOB, rows)
            if within is not None:
                within(connection)
            committed: list[Callable[[], None]] = []
            recorded = [
                (
                    kind,
                    details,
                    self._add_event(
                        connection, RecordedEvent(job.id, kind, details, now, job), committed
                    ),
                )
                for kind, details in events
            ]
        messages = [
            JobEventMessage(job.id, kind, details, event_id) for kind, details, event_id in recorded
        ]
        self._committed(messages, committed)

    def _add_event(
        self, connection: Connection, event: RecordedEvent, committed: list[Callable[[], None]]
    ) -> int:
        """Record an event of the job, and run the event hooks in its transaction; what they
        ask to be called once it commits is added to `committed`."""
        event_id = _add_event(connection, event.job_id, event.kind, event.data, event.at)
        for hook in self._on_event:
            then = hook(connection, event)
            if then is not None:
                committed.append(then)
        return event_id

    def _committed(
        self, messages: list[JobEventMessage], committed: list[Callable[[], None]]
    ) -> None:
        """Once a transaction that recorded events has committed: publish them, then call what
        the event hooks asked for (`EventHook`)."""
        for message in messages:
            self._bus.publish(message)
        for then in committed:
            then()

    def load(self, job_id: str) -> Job | None:
        with self._db.session() as session:
            return session.get(Job, job_id)

    def transition(
        self,
        job_id: str,
        *,
        to: JobStatus,
        allowed_from: Collection[JobStatus],
        event_data: dict[str, Any] | None = None,
        held_by: str | None = None,
        conditions: Collection[ColumnElement[bool]] = (),
        within: Callable[[Connection], object] | None = None,
        **values: Any,
    ) -> bool:
        """Move the job to `to` if it is in one of `allowed_from` (and, with `held_by`, still
        leased to that worker; and meets `conditions`); False if it was not. `within` runs in
        the same transaction, before the move (the ended job's stored files, say), and stands
        or falls with it."""
        moved, _ = self._move(
            job_id,
            to,
            allowed_from=allowed_from,
            event_data=event_data,
            held_by=held_by,
            conditions=conditions,
            within=within,
            values=values,
        )
        return moved

    def end(
        self,
        job_id: str,
        *,
        to: JobStatus,
        held_by: str,
        event_data: dict[str, Any] | None = None,
        within: Callable[[Connection], object] | None = None,
        **values: Any,
    ) -> Job | None:
        """End a running job that `held_by` still holds (`transition` to a terminal state);
        returns the ended job, or None when it was not ended (taken back, or already over)."""
        assert to.is_terminal
        moved, ended = self._move(
            job_id,
            to,
            allowed_from=(JobStatus.RUNNING,),
            event_data=event_data,
            held_by=held_by,
            within=within,
            values=values,
        )
        if moved and ended is None:  # a database that cannot return the updated row
            ended = self.load(job_id)
        return ended

    def _move(
        self,
        job_id: str,
        to: JobStatus,
        *,
        allowed_from: Collection[JobStatus],
        event_data: dict[str, Any] | None,
        held_by: str | None,
        conditions: Collection[ColumnElement[bool]] = (),
        within: Callable[[Connection], object] | None,
        values: dict[str, Any],
    ) -> tuple[bool, Job | None]:
        """`transition`'s work: whether the job moved and, for a terminal move on a database
        that returns updated rows, the job as it ended."""
        data = event_data or {}
        if to.is_terminal:
            values.setdefault("finished_at", self._clock.now())
        if to != JobStatus.RUNNING:
            values.setdefault("lease_expires_at", None)
        returning = to.is_terminal and self._returning
        snapshot: Job | None = None
        committed: list[Callable[[], None]] = []
        try:
            with self._db.connection(writes=True) as connection:
                # what comes with the move is written first, and the update that moves the job
                # sets what the end hooks add: one statement on the job's row
                if within is not None:
                    within(connection)
                if to.is_terminal:
                    for hook in self._on_end:
                        values.update(hook(connection, job_id, to, values) or {})
                statement, params = self._transition_statement(
                    job_id, to, allowed_from, held_by, conditions, values, returning=returning
                )
                if returning:
                    # the ended job comes back with the update: the finish hooks and whoever
                    # waits in this process read it from here, not from another query
                    row = connection.execute(statement, params).one_or_none()
                    if row is None:
                        raise _NotMoved
                    snapshot = from_row(Job, row)
                elif connection.execute(statement, params).rowcount != 1:
                    raise _NotMoved
                if to.is_terminal:
                    ended = values
                    if snapshot is not None:
                        ended = {
                            **values,
                            "model": snapshot.model,
                            "started_at": snapshot.started_at,
                        }
                    for hook in self._on_finish:
                        hook(connection, job_id, to, ended)
                recorded = RecordedEvent(job_id, str(to), data, self._clock.now(), snapshot)
                event_id = self._add_event(connection, recorded, committed)
        except _NotMoved:
            return False, None
        message = JobEventMessage(job_id, str(to), data, event_id, snapshot=snapshot)
        self._committed([message], committed)
        return True, snapshot

    def _transition_statement(
        self,
        job_id: str,
        to: JobStatus,
        allowed_from: Collection[JobStatus],
        held_by: str | None,
        conditions: Collection[ColumnElement[bool]],
        values: dict[str, Any],
        *,
        returning: bool,
    ) -> tuple[Executable, dict[str, Any]]:
        """The conditional update of `transition` and its parameters. A change of the usual
        shape (plain values, no extra conditions) reuses a statement built once for that shape:
        building an UPDATE and its cache key costs more than running it on SQLite."""
        keys = {name: column_key(Job, name) for name in values}
        params = {"b_id": job_id, "b_held": held_by}
        params |= {f"v_{key}": values[name] for name, key in keys.items()}
        plain = not conditions and not any(isinstance(v, ClauseElement) for v in values.values())
        shape = (to, tuple(allowed_from), held_by is not None, tuple(keys.values()), returning)
        if plain:
            known = self._statements.get(shape)
            if known is not None:
                return known, params
        where = [JOBS.c.id == bindparam("b_id")]
        statuses = [str(status) for status in allowed_from]
        # one allowed status (the usual case) compares; several need an IN list
        where.append(
            JOBS.c.status == statuses[0] if len(statuses) == 1 else JOBS.c.status.in_(statuses)
        )
        if held_by is not None:
            where.append(JOBS.c.worker_id == bindparam("b_held"))
        statement = (
            update(JOBS)
            .where(*where, *conditions)
            .values({key: bindparam(f"v_{key}") for key in keys.values()})
            .values(status=str(to))
        )
        if returning:
            statement = statement.returning(*JOBS.c)
        if plain:
            self._statements[shape] = statement
        return statement, params

    def claim(
        self, job_id: str, *, worker_id: str, now: datetime, lease_until: datetime
    ) -> Job | None:
        """Move a queued job to running, leased to `worker_id`, and return it as claimed; None
        when it is not queued (already taken, finished or canceled: a duplicate delivery)."""
        values = {"b_id": job_id, "b_worker": worker_id, "b_now": now, "b_until": lease_until}
        committed: list[Callable[[], None]] = []
        with self._db.connection(writes=True) as connection:
            if self._returning:
                row = connection.execute(CLAIM_RETURNING, values).one_or_none()
            else:
                changed = connection.execute(CLAIM, values)
                row = None
                if changed.rowcount == 1:
                    row = connection.execute(JOB_BY_ID, {"b_id": job_id}).one()
            if row is None:
                return None
            job = from_row(Job, row)
            data = {"attempt": job.attempts}
            recorded = RecordedEvent(job_id, job.status, data, now, job)
            event_id = self._add_event(connection, recorded, committed)
        self._committed([JobEventMessage(job_id, job.status, data, event_id)], committed)
        return job

    def renew_lease(self, job_id: str, worker_id: str, until: datetime) -> tuple[bool, bool]:
        """Extend a running job's lease; returns (still held, cancel requested)."""
        with self._db.session() as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == "running")
                .values(lease_expires_at=until)
            )
            held = bool(changed.rowcount)  # type: ignore[attr-defined]
            cancel = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
        return held, cancel

    def renew_leases(
        self, job_ids: Collection[str], worker_id: str, until: datetime
    ) -> dict[str, tuple[bool, bool]]:
        """`renew_lease` for many jobs of one worker in one transaction."""
        ids = list(job_ids)
        if not ids:
            return {}
        with self._db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.worker_id == worker_id, Job.status == "running")
                .values(lease_expires_at=until),
                execution_options=NO_SYNC,
            )
            rows = session.execute(
                select(Job.id, Job.worker_id, Job.status, Job.cancel_requested).where(
                    Job.id.in_(ids)
                )
            ).all()
        found = {
            row.id: (row.worker_id == worker_id and row.status == "running", row.cancel_requested)
            for row in rows
        }
        return {job_id: found.get(job_id, (False, False)) for job_id in ids}

    def keep_upstream(self, job_id: str, held_by: str, upstream: Mapping[str, Any] | None) -> bool:
        """Note with a running job what its provider accepted (`providers.UpstreamState.data_of`:
        one `UpstreamTask` per request, by index), kept under `result` until the job's own
        result replaces it; whether it was noted (the job is still held by `held_by`)."""
        with self._db.session(writes=True) as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker_id == held_by, Job.status == "running")
                .values(result=JobResult(upstream=upstream) if upstream is not None else None),
                execution_options=NO_SYNC,
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def expired_leases(self, now: datetime) -> list[Job]:
        """Running jobs whose worker stopped renewing their lease."""
        query = select(Job).where(Job.status == "running", Job.lease_expires_at < now)
        with self._db.session() as session:
            return list(session.scalars(query))

    def waiting_since(self, before: datetime, limit: int = 500) -> list[Job]:
        """Queued jobs last handed to the queue before `before` (their message may be lost)."""
        query = (
            select(Job)
            .where(Job.status == "queued", Job.enqueued_at < before)
            .order_by(Job.created_at)
            .limit(limit)
        )
        with self._db.session() as session:
            return list(session.scalars(query))

    def mark_enqueued(self, job_id: str) -> None:
        with self._db.session() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(enqueued_at=self._clock.now())
            )

    def request_cancel(self, job_id: str) -> bool:
        with self._db.session() as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                .values(cancel_requested=True)
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def publish_progress(
        self, job: Job, step: int, total: int, *, preview: str | None = None
    ) -> None:
        """Live only, never recorded: a `preview` (a data URI of a few kilobytes) passes
        through the event bus (Redis pub/sub in a cluster) to whoever follows the job now."""
        data: dict[str, Any] = {"step": step, "total": total}
        if preview is not None:
            data["preview"] = preview
        self._bus.publish(JobEventMessage(job.id, "progress", data))
        for hook in self._on_progress:
            hook(job, step, total)

    def events_after(self, job_id: str, after_id: int | None) -> list[JobEventMessage]:
        query = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        if after_id is not None:
            query = query.where(JobEvent.id > after_id)
        with self._db.session() as session:
            return [
                JobEventMessage(event.job_id, event.type, dict(event.data), event.id)
                for event in session.scalars(query)
            ]

    def count_active(self, *, tenant_id: str | None = None, api_key_id: str | None = None) -> int:
        """Jobs queued or running, for a tenant or an API key."""
        query = select(func.count()).select_from(Job).where(Job.status.in_(ACTIVE))
        if tenant_id is not None:
            query = query.where(Job.tenant_id == tenant_id)
        if api_key_id is not None:
            query = query.where(Job.api_key_id == api_key_id)
        with self._db.session() as session:
            return int(session.scalar(query) or 0)

    def counts_by_state(self) -> list[tuple[str, str, int]]:
        """(model, state, count) of every job on record."""
        query = select(Job.model, Job.status, func.count()).group_by(Job.model, Job.status)
        with self._db.session() as session:
            return [(model, state, int(count)) for model, state, count in session.execute(query)]

    def unfinished(self) -> list[Job]:
        """Jobs left queued or running, oldest first."""
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(Job)
                    .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                    .order_by(Job.created_at)
                )
            )
