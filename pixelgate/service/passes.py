"""A background thread that runs passes over a table of work (batch items to submit, webhook
deliveries to send): one pass every few seconds, at once when woken, and again at once while a
pass did something (more may be waiting behind a full one). Each process runs one per kind of
work; the claims the passes take keep two processes from doing one piece twice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PassLoop:
    def __init__(
        self, name: str, run_pass: Callable[[], int], *, every_seconds: float = 1.0
    ) -> None:
        """`run_pass` returns how much it did; 0 waits for the next turn."""
        self._name = name
        self._run_pass = run_pass
        self._every = every_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pixelgate-{name}", daemon=True)

    def wake(self) -> None:
        """Run a pass now (new work arrived)."""
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                while self._run_pass() and not self._stopping.is_set():
                    pass  # more may be waiting behind a full pass
            except Exception:
                log.exception("%s: a pass failed; trying again", self._name)
            self._wake.wait(self._every)
