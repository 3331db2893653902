"""Housekeeping every process does, safely at once: take back jobs whose worker died, hand
queued jobs to the queue again when their message may be lost, keep worker heartbeats, and
remove results past retention (`service.retention`), each a `Chore` on its own clock in the
`Housekeeper`'s thread. Each step is a conditional update, so two processes doing it
at the same moment do it once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import Job, WorkerRecord
from pixelgate.service.job_store import JobStatus, JobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chore:
    """One housekeeping task and how often it runs."""

    name: str
    every_seconds: float
    run: Callable[[], object]


class Housekeeper:
    """Runs each chore on its own clock, in one background thread, until stopped. A chore that
    fails is logged and runs again at its next turn."""

    def __init__(self, chores: Sequence[Chore]) -> None:
        self.chores = list(chores)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="pixelgate-housekeeping", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        due = dict.fromkeys((chore.name for chore in self.chores), 0.0)
        pause = min([1.0, *(chore.every_seconds for chore in self.chores)])
        while not self._stopping.is_set():
            now = time.monotonic()
            for chore in self.chores:
                if now >= due[chore.name]:
                    due[chore.name] = now + chore.every_seconds
                    try:
                        chore.run()
                    except Exception as exc:
                        log.warning("housekeeping %s failed: %s", chore.name, exc)
            self._stopping.wait(pause)


class Maintenance:
    def __init__(
        self,
        store: JobStore,
        requeue: Callable[[str, str], None],
        clock: Clock,
        *,
        max_attempts: int,
        requeue_after: timedelta,
    ) -> None:
        self._store = store
        self._requeue = requeue
        self._clock = clock
        self._max_attempts = max_attempts
        self._requeue_after = requeue_after

    def take_back_expired(self) -> int:
        """Running jobs whose lease ran out: queue them again, or fail them when they have
        used their attempts. Returns how many were queued again."""
        now = self._clock.now()
        queued = 0
        for job in self._store.expired_leases(now):
            lapsed = [Job.lease_expires_at < now]
            if job.attempts >= self._max_attempts:
                self._store.transition(
                    job.id,
                    to=JobStatus.FAILED,
                    allowed_from=(JobStatus.RUNNING,),
                    conditions=lapsed,
                    error_code="INTERNAL_ERROR",
                    error_message=(
                        f"The job's worker stopped answering {job.attempts} times; giving up"
                    ),
                )
                continue
            if self._store.transition(
                job.id,
                to=JobStatus.QUEUED,
                allowed_from=(JobStatus.RUNNING,),
                conditions=lapsed,
                event_data={"reason": f"worker {job.worker_id} stopped renewing its lease"},
                worker_id=None,
                enqueued_at=now,
            ):
                log.warning("took job %s back from %s", job.id, job.worker_id)
                self._requeue(job.id, job.model)
                queued += 1
        return queued

    def resend_waiting(self) -> int:
        """Queued jobs no worker took in time are handed to the queue again; a duplicate
        message is harmless, a lost one would strand the job."""
        before = self._clock.now() - self._requeue_after
        sent = 0
        for job in self._store.waiting_since(before):
            try:
                self._requeue(job.id, job.model)
            except Exception as exc:
                log.warning("could not hand job %s to the queue: %s", job.id, exc)
                break
            self._store.mark_enqueued(job.id)
            sent += 1
        return sent


class WorkerRegistry:
    """Worker processes and their heartbeats (`GET /v1/admin/workers`)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    @staticmethod
    def new_id() -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"

    def beat(self, worker_id: str, *, models: list[str], running: list[str]) -> None:
        now = self._clock.now()
        with self._db.session() as session:
            record = session.get(WorkerRecord, worker_id)
            if record is None:
                record = WorkerRecord(
                    id=worker_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    models=models,
                    started_at=now,
                    last_seen_at=now,
                    running=running,
                )
                session.add(record)
            record.last_seen_at = now
            record.running = running
            record.models = models

    def leave(self, worker_id: str) -> None:
        with self._db.session() as session:
            session.execute(delete(WorkerRecord).where(WorkerRecord.id == worker_id))

    def seen_since(self, moment: datetime) -> list[WorkerRecord]:
        query = select(WorkerRecord).where(WorkerRecord.last_seen_at >= moment)
        with self._db.session() as session:
            return list(session.scalars(query.order_by(WorkerRecord.started_at)))
