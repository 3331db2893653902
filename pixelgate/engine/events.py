"""In-process publish/subscribe of job events.

Workers publish from their threads; HTTP handlers subscribe from the event loop. A cluster
replaces this with Redis pub/sub behind the same two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
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

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class Subscription:
    def __init__(self, bus: EventBus, job_id: str) -> None:
        self._bus = bus
        self.job_id = job_id
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[JobEventMessage] = asyncio.Queue()

    def deliver(self, event: JobEventMessage) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def next(self, timeout: float) -> JobEventMessage:
        """The next event; raises TimeoutError after `timeout` seconds without one."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}

    def subscribe(self, job_id: str) -> Subscription:
        """Called from the event loop; events are delivered into that loop."""
        subscription = Subscription(self, job_id)
        with self._lock:
            self._subscriptions.setdefault(job_id, set()).add(subscription)
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
            subscribers = list(self._subscriptions.get(event.job_id, ()))
        for subscription in subscribers:
            subscription.deliver(event)
