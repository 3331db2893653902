"""The in-process worker: threads that take job ids from a queue and run them.

It knows nothing of what a job is; it calls the handler it was given with each job id. Model
code therefore never runs on the event loop.

A local model's jobs are handed out a group at a time, to be batched into one pipeline call:
when the model has no jobs out, its waiting jobs start a group at once, and jobs that arrive
within `gather_seconds` of that join it (up to `group_size`), so that a burst of requests meets
in one call instead of the first running alone and the rest after it. Jobs that arrive later
stay queued, and cancelable as queued, until the group is done. Different models run side by
side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    def enqueue(self, job_id: str, model: str) -> None:
        """Hand a job to whatever runs it; `model` routes it in a cluster."""
        ...

    @property
    def depth(self) -> int:
        """Jobs handed over and not yet taken."""
        ...

    def runs_here(self, model: str) -> bool:
        """Whether this process runs `model`'s jobs itself, each on its own (not grouped to be
        batched), so that a caller who waits for one may run it in its own thread instead."""
        ...


class ThreadWorker:
    def __init__(
        self,
        handler: Callable[[str], None],
        *,
        threads: int = 1,
        group_size: int | None = None,
        grouped: Callable[[str], bool] = lambda model: True,
        gather_seconds: float = 0.0,
    ) -> None:
        self._handler = handler
        self._gather_seconds = gather_seconds
        self._group_size = max(1, group_size or threads)
        self._grouped = grouped
        """Whether a model's jobs go out in groups (to be batched); others go out at once."""
        self._cond = threading.Condition()
        self._waiting: dict[str, deque[str]] = {}
        """Queued job ids per model, oldest first."""
        self._running: dict[str, int] = {}
        """Jobs of each model handed out and not yet finished."""
        self._group_started: dict[str, float] = {}
        """When each grouped model's current group went out (it takes joiners for a while)."""
        self._ready: deque[tuple[str, str]] = deque()
        """(job id, model) handed out to the next free thread."""
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"pixelgate-worker-{index}", daemon=True)
            for index in range(threads)
        ]

    def enqueue(self, job_id: str, model: str) -> None:
        with self._cond:
            self._waiting.setdefault(model, deque()).append(job_id)
            self._dispatch()

    @property
    def depth(self) -> int:
        """Jobs not yet taken by a thread."""
        with self._cond:
            return sum(len(ids) for ids in self._waiting.values()) + len(self._ready)

    def runs_here(self, model: str) -> bool:
        return not self._grouped(model)

    def in_hand(self, model: str) -> int:
        """`model`'s jobs handed out to a thread and not yet finished."""
        with self._cond:
            return self._running.get(model, 0)

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _dispatch(self) -> None:
        """Holding the lock: for every grouped model, start a group when it has none out, or
        add to the one out while it still takes joiners; every waiting job of the others."""
        handed = 0
        now = time.monotonic()
        for model, ids in self._waiting.items():
            if not ids:
                continue
            count = len(ids)
            if self._grouped(model):
                running = self._running.get(model, 0)
                if not running:
                    self._group_started[model] = now
                elif now - self._group_started[model] > self._gather_seconds:
                    continue
                count = min(count, self._group_size - running)
            for _ in range(count):
                self._ready.append((ids.popleft(), model))
                self._running[model] = self._running.get(model, 0) + 1
                handed += 1
        # wake one thread per job handed out, not all of them: the others would only take
        # the GIL to find nothing to do
        self._cond.notify(handed)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job_id, model = self._ready.popleft()
            try:
                self._handler(job_id)
            except Exception:  # the handler records failures; this keeps the thread alive
                log.exception("worker handler crashed on job %s", job_id)
            finally:
                with self._cond:
                    self._running[model] -= 1
                    self._dispatch()
