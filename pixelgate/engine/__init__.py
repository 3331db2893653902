"""How jobs get run: the queue, the workers, events and cancel signals."""

from pixelgate.engine.cancellation import CancelRegistry
from pixelgate.engine.events import TERMINAL_EVENTS, EventBus, JobEventMessage, Subscription
from pixelgate.engine.worker import JobQueue, ThreadWorker

__all__ = [
    "TERMINAL_EVENTS",
    "CancelRegistry",
    "EventBus",
    "JobEventMessage",
    "JobQueue",
    "Subscription",
    "ThreadWorker",
]
