"""The webhook outbox: a job's events become deliveries in the database, in the transaction
that records the event, so none is lost to a crash and none is made for an event that did not
happen. `webhook_sender` sends them.

A job's webhook (`job_webhooks`) is recorded with the job. Each recorded event the webhook
asked for (queued, running, succeeded, failed, canceled) adds a delivery (`webhook_deliveries`)
with an id of its own, its `webhook-id` on every try. Progress is not recorded as an event (it
is live only), so a progress delivery is added when progress is published, at most one per job
per `PROGRESS_EVERY` seconds, and only where the webhook asked for `progress`.

Most jobs have no webhook, and the job says so (`jobs.has_webhook`): their events and progress
cost the outbox no query, and the sender wakes only when a delivery was written."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.rows import table
from pixelgate.db.tables import Job, JobWebhook, WebhookAttempt, WebhookDelivery
from pixelgate.service.job_store import RecordedEvent
from pixelgate.service.webhook_targets import Webhook, WebhookTargets

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
PROGRESS_EVERY = 1.0
"""Seconds between two progress deliveries of one job."""
_REMEMBERED = 1024
"""Jobs whose webhook this process remembers for progress (the most recent ones)."""

DELIVERIES = table(WebhookDelivery)
INSERT_DELIVERY = insert(DELIVERIES)
WEBHOOKS = table(JobWebhook)
INSERT_WEBHOOK = insert(WEBHOOKS)
WEBHOOK_OF_JOB = select(WEBHOOKS.c.url, WEBHOOKS.c.tenant_id, WEBHOOKS.c.events).where(
    WEBHOOKS.c.job_id == bindparam("job_id")
)
"""Each recorded event of a job with a webhook asks this (one probe of the primary key), built
once: a Core statement costs about a third of the ORM's `session.get` (46 against 134 µs on
SQLite)."""


@dataclass(frozen=True)
class _Target:
    url: str
    tenant_id: str


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery with its tries, oldest first (`GET /v1/jobs/{id}/webhooks`)."""

    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


class WebhookOutbox:
    def __init__(self, db: Database, clock: Clock, *, targets: WebhookTargets) -> None:
        self._db = db
        self._clock = clock
        self.targets = targets
        self.on_added: Callable[[], None] = lambda: None
        """Called once a delivery is committed (the sender wakes up)."""
        self._lock = threading.Lock()
        self._progress: OrderedDict[str, tuple[_Target | None, float]] = OrderedDict()
        """Job → its webhook (None: none, or no progress wanted) and when progress was last
        added."""

    # -- recording ------------------------------------------------------------------------

    def check(self, webhook: Webhook) -> None:
        """Refuse a request's webhook that pixelgate may not send to (400 naming `webhook`)."""
        self.targets.check(webhook.url)

    def subscribe(
        self, connection: Connection, job_id: str, tenant_id: str, webhook: Webhook
    ) -> None:
        """Record a new job's webhook, in the job's own transaction (before its first event)."""
        connection.execute(
            INSERT_WEBHOOK,
            {
                "job_id": job_id, "tenant_id": tenant_id, "url": webhook.url,
                "events": list(webhook.events), "base_url": webhook.base_url,
            },
        )  # fmt: skip

    def on_job_event(
        self, connection: Connection, event: RecordedEvent
    ) -> Callable[[], None] | None:
        """The job store's event hook: add a delivery when the job's webhook wants the event;
        returns what wakes the sender once the delivery is committed. With the job's record at
        hand, a job without a webhook costs nothing."""
        if event.job is not None and not event.job.has_webhook:
            return None
        webhook = connection.execute(WEBHOOK_OF_JOB, {"job_id": event.job_id}).first()
        if webhook is None or event.kind not in webhook.events:
            return None
        target = _Target(webhook.url, webhook.tenant_id)
        self._add(connection, target, event.job_id, event.kind, event.data, event.at)
        return self.on_added

    def on_progress(self, job: Job, step: int, total: int) -> None:
        """The job store's progress hook: a progress delivery now and then, when wanted. A
        failure here is logged: it must not stop the job that reported the step."""
        if not job.has_webhook:
            return
        try:
            self._add_progress(job.id, step, total)
        except Exception as exc:
            log.warning("no progress delivery for job %s: %s", job.id, exc)

    def _add_progress(self, job_id: str, step: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            known = self._progress.get(job_id)
        if known is not None and (known[0] is None or now - known[1] < PROGRESS_EVERY):
            return
        target = known[0] if known is not None else self._progress_target(job_id)
        if target is not None:
            # the writer's turn only for a job whose webhook wants progress: most jobs have none
            with self._db.connection(writes=True) as connection:
                data = {"step": step, "total": total}
                self._add(connection, target, job_id, "progress", data, self._clock.now())
            self.on_added()
        with self._lock:
            self._progress[job_id] = (target, now)
            self._progress.move_to_end(job_id)
            while len(self._progress) > _REMEMBERED:
                self._progress.popitem(last=False)

    def _progress_target(self, job_id: str) -> _Target | None:
        """Where the job's progress goes: its webhook, when it asked for progress."""
        with self._db.session() as session:
            record = session.execute(WEBHOOK_OF_JOB, {"job_id": job_id}).first()
        if record is None or "progress" not in record.events:
            return None
        return _Target(record.url, record.tenant_id)

    def _add(
        self,
        connection: Connection,
        target: _Target,
        job_id: str,
        kind: str,
        data: dict[str, Any],
        at: datetime,
    ) -> None:
        connection.execute(
            INSERT_DELIVERY,
            {
                "id": "msg_" + secrets.token_hex(12),
                "job_id": job_id,
                "tenant_id": target.tenant_id,
                "url": target.url,
                "event": kind,
                "data": data,
                "state": PENDING,
                "attempts": 0,
                "created_at": at,
                "next_attempt_at": at,
                "claimed_until": None,
                "finished_at": None,
            },
        )

    # -- reading --------------------------------------------------------------------------

    def deliveries(self, job_id: str) -> list[DeliveryRecord]:
        """A job's deliveries in order, each with its tries."""
        with self._db.session() as session:
            deliveries = list(
                session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.job_id == job_id)
                    .order_by(WebhookDelivery.seq)
                )
            )
            tries: dict[int, list[WebhookAttempt]] = {d.seq: [] for d in deliveries}
            if tries:
                for attempt in session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_seq.in_(tries))
                    .order_by(WebhookAttempt.id)
                ):
                    tries[attempt.delivery_seq].append(attempt)
        return [DeliveryRecord(delivery, tries[delivery.seq]) for delivery in deliveries]
