"""How jobs get run: the queue, the workers, events and cancel signals.

The names below are imported on first use, so that importing one module of this package (the
model worker process's `model_host`, or `model_launch`, which `pixelgate serve` imports before
anything else) does not import the others."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixelgate.engine.cancellation import CancelRegistry
    from pixelgate.engine.events import (
        TERMINAL_EVENTS,
        EventBus,
        JobEventMessage,
        Subscription,
    )
    from pixelgate.engine.worker import JobQueue, ThreadWorker

_HOMES = {
    "TERMINAL_EVENTS": "events",
    "CancelRegistry": "cancellation",
    "EventBus": "events",
    "JobEventMessage": "events",
    "JobQueue": "worker",
    "Subscription": "events",
    "ThreadWorker": "worker",
}
"""Each exported name, and the module of this package it comes from."""

__all__ = [
    "TERMINAL_EVENTS",
    "CancelRegistry",
    "EventBus",
    "JobEventMessage",
    "JobQueue",
    "Subscription",
    "ThreadWorker",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pixelgate.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pixelgate.engine.{home}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
