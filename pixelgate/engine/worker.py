"""The in-process worker: threads that take job ids from a queue and run them.

It knows nothing of what a job is; it calls the handler it was given with each job id. Model
code therefore never runs on the event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

_STOP = object()


class JobQueue(Protocol):
    def enqueue(self, job_id: str, model: str) -> None:
        """Hand a job to whatever runs it; `model` routes it in a cluster."""
        ...


class ThreadWorker:
    def __init__(self, handler: Callable[[str], None], *, threads: int = 1) -> None:
        self._handler = handler
        self._queue: queue.Queue[object] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"pixelgate-worker-{index}", daemon=True)
            for index in range(threads)
        ]

    def enqueue(self, job_id: str, model: str) -> None:
        self._queue.put(job_id)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._handler(str(item))
            except Exception:  # the handler records failures; this keeps the thread alive
                log.exception("worker handler crashed on job %s", item)
