"""Cancel tokens of the jobs running in this process, so a cancel reaches the step loop."""

from __future__ import annotations

import threading

from pixelgate.providers.base import CancelToken


class CancelRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, CancelToken] = {}

    def open(self, job_id: str) -> CancelToken:
        with self._lock:
            return self._tokens.setdefault(job_id, CancelToken())

    def cancel(self, job_id: str) -> bool:
        """Signal the job if it runs here; True when it does."""
        with self._lock:
            token = self._tokens.get(job_id)
        if token is None:
            return False
        token.cancel()
        return True

    def close(self, job_id: str) -> None:
        with self._lock:
            self._tokens.pop(job_id, None)
