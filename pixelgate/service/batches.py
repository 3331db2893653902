"""Batches: up to 100 generate requests sent together, each run as an ordinary job.

A batch is accepted whole or not at all: every request is checked as `submit` checks it
(`JobService.check`) before anything is recorded. Its items are then submitted one by one, in
order, by the dispatcher of any API process, through `JobService.submit` as the key that sent
the batch, so every admission rule applies to each: an item refused by a rate or concurrency
limit waits as long as the limit says and is tried again; one refused otherwise (the budget
spent, the key revoked since) is recorded as failed with that error, and the rest go on.

Each item is claimed in the database before it is submitted, so one process submits it, and
is submitted under an Idempotency-Key of its own, so a process that dies between submitting
and recording the job leaves a retry that finds the same job instead of making another.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from pixelgate.clock import Clock
from pixelgate.db.database import Database
from pixelgate.db.tables import Batch, BatchItem, Job
from pixelgate.errors import (
    Conflict,
    Error,
    NotFound,
    RateLimited,
    ValidationError,
    error_from_code,
)
from pixelgate.service.access import AccessService, Principal
from pixelgate.service.job_store import JobStatus
from pixelgate.service.jobs import ImageCommand, JobService
from pixelgate.service.passes import PassLoop
from pixelgate.service.webhook_targets import Webhook

MAX_ITEMS = 100
CLAIM_SECONDS = 60.0
"""How long a dispatcher holds an item it submits before another may take it over."""
DISPATCH_PASS = 200
"""Items looked at per pass of the dispatcher."""

PENDING, SUBMITTED, REFUSED, CANCELED = "pending", "submitted", "refused", "canceled"
ITEM_STATUSES = ("pending", "queued", "running", "succeeded", "failed", "canceled")
"""What an item reports: `pending` until submitted, then its job's status; a refused item is
`failed`, one canceled before it was submitted `canceled`."""


@dataclass(frozen=True)
class ItemView:
    """One item as the caller sees it."""

    position: int
    status: str
    job: Job | None
    error: Error | None


@dataclass(frozen=True)
class BatchView:
    batch: Batch
    counts: dict[str, int]
    items: list[ItemView] | None
    """None where only the summary was read (a list of batches)."""

    @property
    def status(self) -> str:
        """`in_progress` while an item is pending, queued or running; then `completed`, or
        `canceled` when the batch was canceled."""
        if any(self.counts[name] for name in ("pending", "queued", "running")):
            return "in_progress"
        return "canceled" if self.batch.canceled_at is not None else "completed"


class BatchService:
    def __init__(self, db: Database, jobs: JobService, access: AccessService, clock: Clock) -> None:
        self._db = db
        self._jobs = jobs
        self._access = access
        self._clock = clock
        self.on_created: Callable[[], None] = lambda: None
        """Called once a batch is recorded (the dispatcher wakes up)."""

    # -- accepting ------------------------------------------------------------------------

    def create(
        self,
        principal: Principal,
        requests: Sequence[ImageCommand],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> BatchView:
        """Check every request, then record the batch; the first refusal names its item
        (`requests.3.width`) and nothing is recorded."""
        if not 1 <= len(requests) <= MAX_ITEMS:
            raise ValidationError(
                f"A batch holds 1 to {MAX_ITEMS} requests; got {len(requests)}", param="requests"
            )
        for position, command in enumerate(requests):
            if command.task != "generate" or command.image is not None:
                raise ValidationError(
                    f"requests[{position}]: a batch holds generate requests only",
                    param=item_param(position, None),
                )
            try:
                self._jobs.check(principal, command)
            except ValidationError as exc:
                raise type(exc)(
                    f"requests[{position}]: {exc.message}", param=item_param(position, exc.param)
                ) from None
        now = self._clock.now()
        batch = Batch(
            id="batch_" + secrets.token_hex(12),
            tenant_id=principal.tenant_id,
            api_key_id=principal.key_id,
            item_count=len(requests),
            metadata_=metadata,
            created_at=now,
            canceled_at=None,
        )
        items = [
            BatchItem(
                batch_id=batch.id,
                position=position,
                request=_stored(command),
                state=PENDING,
                job_id=None,
                error_code=None,
                error_message=None,
                error_param=None,
                not_before=None,
                claimed_until=None,
            )
            for position, command in enumerate(requests)
        ]
        with self._db.session(writes=True) as session:
            session.add(batch)
            session.flush()
            session.add_all(items)
        self.on_created()
        return self.get(principal, batch.id)

    # -- reading --------------------------------------------------------------------------

    def get(self, principal: Principal, batch_id: str) -> BatchView:
        """A batch of the caller's tenant with each item and its job."""
        with self._db.session() as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.tenant_id != principal.tenant_id:
                raise NotFound(f"No batch {batch_id!r}", param="batch_id")
            rows = session.execute(
                select(BatchItem, Job)
                .outerjoin(Job, Job.id == BatchItem.job_id)
                .where(BatchItem.batch_id == batch_id)
                .order_by(BatchItem.position)
            ).all()
        items = [_item_view(item, job) for item, job in rows]
        counts = dict.fromkeys(ITEM_STATUSES, 0)
        for item in items:
            counts[item.status] += 1
        return BatchView(batch, counts, items)

    def summaries(self, batches: Iterable[Batch]) -> list[BatchView]:
        """Each batch with its counts by status (one grouped query for all of them)."""
        listed = list(batches)
        counts = {batch.id: dict.fromkeys(ITEM_STATUSES, 0) for batch in listed}
        if listed:
            with self._db.session() as session:
                rows = session.execute(
                    select(BatchItem.batch_id, BatchItem.state, Job.status, func.count())
                    .outerjoin(Job, Job.id == BatchItem.job_id)
                    .where(BatchItem.batch_id.in_(counts))
                    .group_by(BatchItem.batch_id, BatchItem.state, Job.status)
                ).all()
            for batch_id, state, job_status, count in rows:
                counts[batch_id][_status_of(state, job_status)] += count
        return [BatchView(batch, counts[batch.id], None) for batch in listed]

    # -- canceling ------------------------------------------------------------------------

    def cancel(self, principal: Principal, batch_id: str) -> BatchView:
        """Cancel the items not yet submitted, and the submitted ones still queued; running
        ones finish."""
        principal.require("generate")
        view = self.get(principal, batch_id)
        with self._db.session(writes=True) as session:
            session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.canceled_at.is_(None))
                .values(canceled_at=self._clock.now())
            )
            session.execute(
                update(BatchItem)
                .where(BatchItem.batch_id == batch_id, BatchItem.state == PENDING)
                .values(state=CANCELED, claimed_until=None)
            )
        assert view.items is not None
        for item in view.items:
            if item.job is not None and item.status == JobStatus.QUEUED:
                _cancel_quietly(self._jobs, principal, item.job.id)
        return self.get(principal, batch_id)

    # -- dispatching ----------------------------------------------------------------------

    def dispatch(self) -> int:
        """Submit the pending items whose wait is over, oldest batch first and each batch in
        order; a tenant limited once is left for the next pass. Returns how many were
        submitted or refused."""
        now = self._clock.now()
        with self._db.session() as session:
            rows = session.execute(
                select(BatchItem.batch_id, BatchItem.position, Batch.tenant_id, Batch.api_key_id)
                .join(Batch, Batch.id == BatchItem.batch_id)
                .where(
                    BatchItem.state == PENDING,
                    or_(BatchItem.not_before.is_(None), BatchItem.not_before <= now),
                    or_(BatchItem.claimed_until.is_(None), BatchItem.claimed_until < now),
                )
                .order_by(Batch.created_at, BatchItem.batch_id, BatchItem.position)
                .limit(DISPATCH_PASS)
            ).all()
        limited: set[str] = set()
        done = 0
        for batch_id, position, tenant_id, key_id in rows:
            if tenant_id in limited:
                continue
            if not self._claim(batch_id, position):
                continue
            outcome = self._submit(batch_id, position, key_id)
            if outcome == "limited":
                limited.add(tenant_id)
            else:
                done += 1
        return done

    def _claim(self, batch_id: str, position: int) -> bool:
        now = self._clock.now()
        with self._db.session(writes=True) as session:
            claimed = session.execute(
                update(BatchItem)
                .where(
                    _item(batch_id, position),
                    BatchItem.state == PENDING,
                    or_(BatchItem.claimed_until.is_(None), BatchItem.claimed_until < now),
                )
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    def _submit(self, batch_id: str, position: int, key_id: str) -> str:
        """Submit one claimed item: `submitted`, `refused` or `limited` (left pending)."""
        with self._db.session() as session:
            item = session.get(BatchItem, (batch_id, position))
        assert item is not None
        try:
            principal = self._access.principal_of_key(key_id)
            command = replace(
                command_of(item.request), idempotency_key=f"batch:{batch_id}:{position}"
            )
            job = self._jobs.submit(principal, command)
        except RateLimited as exc:
            wait = timedelta(seconds=exc.retry_after if exc.retry_after else 1.0)
            self._settle(batch_id, position, not_before=self._clock.now() + wait)
            return "limited"
        except Error as exc:
            self._settle(
                batch_id, position, state=REFUSED, error_code=exc.code,
                error_message=exc.message, error_param=exc.param,
            )  # fmt: skip
            return "refused"
        if not self._settle(batch_id, position, state=SUBMITTED, job_id=job.id):
            # canceled while it was being submitted: its job goes too
            _cancel_quietly(self._jobs, principal, job.id)
        return "submitted"

    def _settle(self, batch_id: str, position: int, **values: Any) -> bool:
        """Record an item's outcome and release its claim, if it is still pending."""
        with self._db.session(writes=True) as session:
            changed = session.execute(
                update(BatchItem)
                .where(_item(batch_id, position), BatchItem.state == PENDING)
                .values(claimed_until=None, **values)
            )
        return bool(changed.rowcount)  # type: ignore[attr-defined]


def batch_dispatcher(batches: BatchService) -> PassLoop:
    """Submits batch items in the background: a pass every second, and at once when a batch
    arrives. Each API process runs one; their claims keep them from submitting an item twice."""
    loop = PassLoop("batches", batches.dispatch)
    batches.on_created = loop.wake
    return loop


def _stored(command: ImageCommand) -> dict[str, Any]:
    """A generate command as an item keeps it (it has no images)."""
    return {
        "model": command.model,
        "options": command.options,
        "response_format": command.response_format,
        "metadata": command.metadata,
        "use_cache": command.use_cache,
        "webhook": None if command.webhook is None else {
            "url": command.webhook.url,
            "events": list(command.webhook.events),
            "base_url": command.webhook.base_url,
        },
    }  # fmt: skip


def command_of(stored: dict[str, Any]) -> ImageCommand:
    """An item's command, as `_stored` kept it."""
    webhook = stored.get("webhook")  # items stored before webhooks came have none
    return ImageCommand(
        task="generate",
        model=stored["model"],
        options=stored["options"],
        response_format=stored["response_format"],
        metadata=stored["metadata"],
        use_cache=stored["use_cache"],
        webhook=None if webhook is None else Webhook(
            webhook["url"], tuple(webhook["events"]), webhook["base_url"]
        ),
    )  # fmt: skip


def item_param(position: int, param: str | None) -> str:
    """`requests.3.width`: a parameter of one item of the batch."""
    return f"requests.{position}" + (f".{param}" if param else "")


def _item(batch_id: str, position: int) -> Any:
    return and_(BatchItem.batch_id == batch_id, BatchItem.position == position)


def _status_of(state: str, job_status: str | None) -> str:
    if state == SUBMITTED and job_status is not None:
        return job_status
    if state == REFUSED:
        return "failed"
    if state == CANCELED:
        return "canceled"
    return "pending" if state == PENDING else "failed"  # a submitted item whose job is gone


def _item_view(item: BatchItem, job: Job | None) -> ItemView:
    error = None
    if item.error_code is not None:
        error = error_from_code(item.error_code, item.error_message or "", param=item.error_param)
    return ItemView(item.position, _status_of(item.state, job.status if job else None), job, error)


def _cancel_quietly(jobs: JobService, principal: Principal, job_id: str) -> None:
    """Cancel a queued job; one that has started or ended since is left as it is."""
    with contextlib.suppress(Conflict, NotFound):
        jobs.cancel(principal, job_id)
