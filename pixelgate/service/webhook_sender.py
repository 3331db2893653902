"""Sends the webhook outbox (`webhook_outbox`): each pending delivery whose time has come and
whose job has no earlier delivery still pending (deliveries of one job go in order), claimed
first so that one process sends it whichever of many does the pass.

A try POSTs the body (`webhook_payload`) signed with the tenant's secret(s) (Standard
Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`) to the address the egress
guard checks now (DNS rebinding), not following redirects. A 2xx answer delivers it; anything
else (another status, no answer in time, a refused address) is recorded as a try and retried
after a backoff that doubles (capped at `MAX_BACKOFF`), with jitter, until the retry window
(a day by default) is over: then it is marked failed, and the job's next delivery may go.
A sender that dies mid-try leaves its claim to lapse: another sends the delivery again, under
the same `webhook-id` (at least once).

Tries run side by side, up to `concurrency` at once in each process, each in a thread of its
own, at most `per_receiver` of them to one receiver (a scheme, host and port) and at most
`per_tenant` of them for one tenant, so a receiver that takes its whole timeout holds a few
places, and a tenant with many such receivers no more than its share: never every other
tenant's deliveries behind them. A pass claims only as many as there are free places (a claim
never waits for a place while its lease runs), and never one of a job that has a try in flight
here. On `close`, the tries in flight finish (up to the timeout); one still running after that
keeps its claim, which lapses for another sender to try again."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.tables import Job, JobWebhook, WebhookAttempt, WebhookDelivery
from pixelgate.providers.egress import Refused
from pixelgate.providers.upstream import pinned
from pixelgate.service.webhook_outbox import DELIVERED, FAILED, PENDING
from pixelgate.service.webhook_secrets import WebhookSecrets
from pixelgate.service.webhook_targets import WebhookTargets
from pixelgate.webhook_signatures import signature_header

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
"""Longest wait between two tries of a delivery, in seconds."""
SEND_PASS = 50
"""Deliveries looked at per pass."""
USER_AGENT = "pixelgate-webhooks"

BodyBuilder = Callable[[Job, WebhookDelivery, str], bytes]
"""(job, delivery, base URL of links) → the body of one try."""


@dataclass(frozen=True)
class Outcome:
    """What one try came to."""

    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class _InFlight:
    """A try running here: its delivery's job and tenant, and where it goes."""

    job_id: str
    tenant_id: str
    url: str
    receiver: tuple[str, str, int | None]


def _receiver_of(url: str) -> tuple[str, str, int | None]:
    """Who answers a webhook URL: its scheme, host and port (paths of one server are one)."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


class WebhookSender:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        secrets: WebhookSecrets,
        targets: WebhookTargets,
        body: BodyBuilder,
        timeout_seconds: float,
        retry_window: timedelta,
        backoff_seconds: float,
        concurrency: int,
        per_receiver: int | None = None,
        per_tenant: int | None = None,
    ) -> None:
        """`per_receiver`, `per_tenant`: the most tries to one receiver, and for one tenant's
        deliveries, at once (None: `concurrency`)."""
        self._db = db
        self._clock = clock
        self._secrets = secrets
        self._targets = targets
        self._body = body
        self._retry_window = retry_window
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._claim = timedelta(seconds=max(60.0, 3 * timeout_seconds))
        self._concurrency = concurrency
        self._per_receiver = per_receiver or concurrency
        self._per_tenant = per_tenant or concurrency
        self._changed = threading.Condition()
        self._in_flight: dict[int, _InFlight] = {}
        """Delivery (seq) → its try, for each try running here."""
        self._closing = False
        self.on_finished: Callable[[], None] = lambda: None
        """Called after each try (a place is free, and the job's next delivery may go)."""
        # one client for every delivery, its connections kept alive per receiver
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    def close(self) -> None:
        """Take no more; let the tries in flight finish (up to the timeout and a second)."""
        with self._changed:
            self._closing = True
            self._changed.wait_for(lambda: not self._in_flight, self._timeout + 1.0)
            left = len(self._in_flight)
        if left:
            log.warning("%d webhook tries still in flight at shutdown: their claims lapse", left)
        else:
            self._client.close()

    def send_due(self) -> int:
        """One pass: start the deliveries whose time has come, as many as there are free
        places. Returns how many were started."""
        with self._changed:
            if self._closing:
                return 0
            free = self._concurrency - len(self._in_flight)
            busy = {flight.job_id for flight in self._in_flight.values()}
            load = Counter(flight.receiver for flight in self._in_flight.values())
            full = {
                flight.url
                for flight in self._in_flight.values()
                if load[flight.receiver] >= self._per_receiver
            }
            shares = Counter(flight.tenant_id for flight in self._in_flight.values())
            full_tenants = {tenant for tenant, held in shares.items() if held >= self._per_tenant}
        if free <= 0:
            return 0  # a finished try wakes the loop
        now = self._clock.now()
        earlier = aliased(WebhookDelivery)
        before_it = exists().where(
            earlier.job_id == WebhookDelivery.job_id,
            earlier.state == PENDING,
            earlier.seq < WebhookDelivery.seq,
        )
        query = (
            select(
                WebhookDelivery.seq,
                WebhookDelivery.job_id,
                WebhookDelivery.tenant_id,
                WebhookDelivery.url,
            )
            .where(
                WebhookDelivery.state == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
                ~before_it,
                # a full receiver's usual URL, a tenant with its share: their deliveries must
                # not fill the pass's window
                WebhookDelivery.url.not_in(full),
                WebhookDelivery.tenant_id.not_in(full_tenants),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.seq)
            .limit(SEND_PASS)
        )
        with self._db.session() as session:
            due = session.execute(query).all()
        started = 0
        for seq, job_id, tenant_id, url in due:
            if started == free:
                break
            receiver = _receiver_of(url)
            if load[receiver] >= self._per_receiver or shares[tenant_id] >= self._per_tenant:
                continue
            # a try running here whose claim lapsed (a slow one) is not started twice
            if job_id in busy or not self._claimed(seq):
                continue
            busy.add(job_id)
            load[receiver] += 1
            shares[tenant_id] += 1
            with self._changed:
                self._in_flight[seq] = _InFlight(job_id, tenant_id, url, receiver)
            threading.Thread(
                target=self._send, args=(seq,), name="pixelgate-webhook", daemon=True
            ).start()
            started += 1
        return started

    def _send(self, seq: int) -> None:
        """One try in its own thread; its place is given back however it ends. A try that
        fails unrecorded (the database went away) keeps its claim until it lapses."""
        try:
            self._try(seq)
        except Exception:
            log.exception("webhook delivery %d: the try failed unrecorded", seq)
        finally:
            with self._changed:
                del self._in_flight[seq]
                closed = self._closing and not self._in_flight
                self._changed.notify_all()
            if closed:
                self._client.close()  # the last try that outlived `close`
            self.on_finished()

    def _claimed(self, seq: int) -> bool:
        """Take the delivery for one try; False when another sender holds it or it is done."""
        now = self._clock.now()
        with self._db.session(writes=True) as session:
            changed = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.seq == seq,
                    WebhookDelivery.state == PENDING,
                    or_(
                        WebhookDelivery.claimed_until.is_(None),
                        WebhookDelivery.claimed_until < now,
                    ),
                )
                .values(claimed_until=now + self._claim)
            )
        return bool(changed.rowcount)  # type: ignore[attr-defined]

    def _try(self, seq: int) -> None:
        with self._db.session() as session:
            row = session.execute(
                select(WebhookDelivery, Job, JobWebhook)
                .join(Job, Job.id == WebhookDelivery.job_id)
                .join(JobWebhook, JobWebhook.job_id == WebhookDelivery.job_id)
                .where(WebhookDelivery.seq == seq)
            ).one_or_none()
        if row is None:
            return  # its job was deleted meanwhile, and the delivery with it
        delivery, job, webhook = row
        outcome = self._post(delivery, self._body(job, delivery, webhook.base_url))
        self._record(delivery, outcome)

    def _post(self, delivery: WebhookDelivery, body: bytes) -> Outcome:
        started = time.monotonic()
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                self._secrets.signing(delivery.tenant_id), delivery.id, timestamp, body
            ),
        }
        status: int | None = None
        error: str | None = None
        try:
            destination = self._targets.destination(delivery.url)
            url, extensions = destination.url, dict[str, Any]()
            if destination.address is not None:
                url, pin, extensions = pinned(destination.url, destination.address)
                headers |= pin
            response = self._client.post(url, content=body, headers=headers, extensions=extensions)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except Refused as exc:
            error = f"refused: {exc.what}" + (f" ({exc.reason})" if exc.reason else "")
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Outcome(status, error, (time.monotonic() - started) * 1000)

    def _record(self, delivery: WebhookDelivery, outcome: Outcome) -> None:
        """Record the try; then the delivery is delivered, due again later, or given up."""
        now = self._clock.now()
        tries = delivery.attempts + 1
        values: dict[str, object] = {"attempts": tries, "claimed_until": None}
        if outcome.delivered:
            values |= {"state": DELIVERED, "finished_at": now}
        else:
            wait = min(self._backoff * 2 ** (tries - 1), MAX_BACKOFF)
            wait *= 1 - random.random() / 2  # jitter: between half and all of it
            retry_at = now + timedelta(seconds=wait)
            if retry_at > as_utc(delivery.created_at) + self._retry_window:
                values |= {"state": FAILED, "finished_at": now}
                log.warning(
                    "webhook delivery %s of job %s given up after %d tries: %s",
                    delivery.id, delivery.job_id, tries, outcome.error,
                )  # fmt: skip
            else:
                values |= {"next_attempt_at": retry_at}
        with self._db.session(writes=True) as session:
            session.execute(
                insert(WebhookAttempt).values(
                    delivery_seq=delivery.seq,
                    attempted_at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=round(outcome.duration_ms, 1),
                )
            )
            session.execute(
                update(WebhookDelivery)
                .where(and_(WebhookDelivery.seq == delivery.seq, WebhookDelivery.state == PENDING))
                .values(**values)
            )
