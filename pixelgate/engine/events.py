"""In-process publish/subscribe of job events.

Workers publish from their threads; HTTP handlers subscribe from the event loop. A cluster
replaces this with Redis pub/sub behind the same two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

TERMINAL_EVENTS = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class JobEventMessage:
    job_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    """The persisted event's id; None for progress, which is not persisted."""
    snapshot: object = field(default=None, compare=False, repr=False)
    """In this process only, never sent on: the job's record as this event left it (an ended
    job, from the update that ended it), so a waiter here need not read it back."""

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class Subscription:
    def __init__(self, bus: EventBus, job_id: str, *, only_endings: bool = False) -> None:
        self._bus = bus
        self.job_id = job_id
        self.only_endings = only_endings
        """Deliver the terminal event only: a waiter that wants the outcome is not woken at
        every step (each wake-up takes a core from a model running on all of them)."""
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[JobEventMessage] = asyncio.Queue()

    def deliver(self, event: JobEventMessage) -> None:
        if self.only_endings and not event.is_terminal:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def next(self, timeout: float) -> JobEventMessage:
        """The next event; raises TimeoutError after `timeout` seconds without one."""
        async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for
            return await self._queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)


RECENT_ENDINGS = 1024
"""How many of the latest jobs' terminal events the bus keeps for late subscribers."""


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._endings: OrderedDict[str, JobEventMessage] = OrderedDict()
        """The terminal events of the latest jobs to end, oldest first."""

    def subscribe(self, job_id: str, *, only_endings: bool = False) -> Subscription:
        """Called from the event loop; events are delivered into that loop. A job that ended
        lately (its terminal event passed through this bus) delivers that event at once, so a
        subscriber who comes a moment late does not wait for news that has passed."""
        subscription = Subscription(self, job_id, only_endings=only_endings)
        with self._lock:
            self._subscriptions.setdefault(job_id, set()).add(subscription)
            ended = self._endings.get(job_id)
            if ended is not None:
                subscription.deliver(ended)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscriptions.get(subscription.job_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscriptions[subscription.job_id]

    def publish(self, event: JobEventMessage) -> None:
        """Safe from any thread."""
        with self._lock:
            if event.is_terminal:
                self._endings[event.job_id] = event
                if len(self._endings) > RECENT_ENDINGS:
                    self._endings.popitem(last=False)
            subscribers = list(self._subscriptions.get(event.job_id, ()))
        for subscription in subscribers:
            subscription.deliver(event)
