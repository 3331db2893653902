"""Dynamic batching: concurrent compatible requests to one model become one call.

Each model has one `Batcher`. A caller thread submits its item and blocks. When the model is
idle, one waiting caller becomes the leader: it waits a short quiet window for companions,
takes the oldest item and every later item with the same compatibility key (up to
`max_size`), runs them in one call and hands each caller its own outcome. Only one call runs
at a time, so a model is never called from two threads at once. Items that arrive while a call
runs wait for the next one. An item submitted `alone` (its caller knows of nothing else on its
way) skips the window when it is all there is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

HEARTBEAT_SECONDS = 0.1
"""How often a waiting caller looks at its cancel flag."""


class Withdrawn(Exception):
    """The item was canceled while it waited and left the queue before any call."""


@dataclass(eq=False)
class _Entry(Generic[T, R]):
    key: Hashable
    item: T
    size: int
    alone: bool = False
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    arrived: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class BatchStats:
    calls: int
    items: int
    largest: int


class Batcher(Generic[T, R]):
    """Merges items with equal keys into one `run` call.

    `run(key, items)` returns one outcome per item, in order: its result, or the exception that
    item's caller should get. An exception raised by `run` itself goes to every caller of that
    call. `size(item)` is how much of `max_size` an item takes (its number of images).
    """

    def __init__(
        self,
        run: Callable[[Hashable, Sequence[T]], Sequence[R | BaseException]],
        *,
        max_size: int,
        window_seconds: float,
        size: Callable[[T], int] = lambda _item: 1,
        canceled: Callable[[T], bool] = lambda _item: False,
    ) -> None:
        self._run = run
        self.max_size = max_size
        self.window_seconds = window_seconds
        self._size = size
        self._canceled = canceled
        self._cond = threading.Condition()
        self._pending: list[_Entry[T, R]] = []
        self._running = False
        self._last_arrival = 0.0
        self._calls = 0
        self._items = 0
        self._largest = 0

    @property
    def stats(self) -> BatchStats:
        with self._cond:
            return BatchStats(self._calls, self._items, self._largest)

    @property
    def busy(self) -> bool:
        """A call runs or items wait."""
        with self._cond:
            return self._running or bool(self._pending)

    def submit(self, key: Hashable, item: T, *, alone: bool = False) -> R:
        """Run `item` (with whatever joins it) and return its own result. Raises its own
        error, or `Withdrawn` when it was canceled before its call began. `alone`: the caller
        knows of no other item on its way, so waiting for companions would only add latency."""
        entry: _Entry[T, R] = _Entry(key, item, max(1, self._size(item)), alone)
        with self._cond:
            self._pending.append(entry)
            self._last_arrival = entry.arrived
            self._cond.notify_all()
            while not entry.done:
                if not self._running:
                    self._lead()
                    continue
                self._cond.wait(HEARTBEAT_SECONDS)
                if not entry.done and entry in self._pending and self._canceled(item):
                    self._pending.remove(entry)
                    raise Withdrawn("canceled while waiting for the model")
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[return-value]

    def _lead(self) -> None:
        """Called holding the lock: gather one batch, run it unlocked, publish the outcomes."""
        self._running = True
        try:
            batch = self._gather()
            if batch:
                self._cond.release()
                try:
                    outcomes = self._call(batch)
                finally:
                    self._cond.acquire()
                for entry, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        entry.error = outcome
                    else:
                        entry.result = outcome
                    entry.done = True
                self._calls += 1
                self._items += len(batch)
                self._largest = max(self._largest, len(batch))
        finally:
            self._running = False
            self._cond.notify_all()

    def _gather(self) -> list[_Entry[T, R]]:
        """Wait until the window has been quiet or a batch is full; take the oldest item and
        its compatible followers."""
        started = time.monotonic()
        while self._pending:
            head = self._pending[0].key
            filled = sum(entry.size for entry in self._pending if entry.key == head)
            now = time.monotonic()
            quiet_until = min(self._last_arrival, started + 3 * self.window_seconds)
            remaining = quiet_until + self.window_seconds - now
            alone = all(entry.alone for entry in self._pending)
            if filled >= self.max_size or remaining <= 0 or alone:
                break
            self._cond.wait(remaining)
        if not self._pending:
            return []
        head = self._pending[0].key
        batch: list[_Entry[T, R]] = []
        used = 0
        for entry in list(self._pending):
            if entry.key != head:
                continue
            if batch and used + entry.size > self.max_size:
                break
            batch.append(entry)
            used += entry.size
            self._pending.remove(entry)
        return batch

    def _call(self, batch: list[_Entry[T, R]]) -> Sequence[R | BaseException]:
        try:
            outcomes = self._run(batch[0].key, [entry.item for entry in batch])
        except Exception as exc:
            return [exc] * len(batch)
        if len(outcomes) != len(batch):
            error = RuntimeError(f"batch call returned {len(outcomes)} outcomes for {len(batch)}")
            return [error] * len(batch)
        return outcomes
