"""When a failed upstream call is tried again, and how long it waits first.

Retries back off exponentially with full jitter; a `Retry-After` header (seconds or an HTTP
date) replaces the backoff, capped so that a provider cannot park a worker for long. Every wait
wakes early when the job is canceled.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pixelgate.errors import Canceled
from pixelgate.providers.base import CancelToken

CANCEL_CHECK_SECONDS = 0.05


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a failed upstream call is tried again."""

    max_retries: int = 2
    backoff_seconds: float = 0.5
    """The first retry waits up to this long; each later one up to twice the one before."""
    max_delay_seconds: float = 30.0
    """Cap on any single wait, `Retry-After` included."""

    def delay(self, retry: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (0 for the first)."""
        asked = retry_after_seconds(retry_after, now=datetime.now(UTC))
        if asked is not None:
            return min(asked, self.max_delay_seconds)
        # full jitter: spreads the retries of many workers over the whole window
        ceiling = min(self.max_delay_seconds, self.backoff_seconds * 2**retry)
        return rng.uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A `Retry-After` header in seconds: delay-seconds or an HTTP date; None when absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def wait(seconds: float, cancel: CancelToken | None) -> None:
    """Sleep, waking early to raise `Canceled` when the job is canceled."""
    deadline = time.monotonic() + seconds
    while True:
        if cancel is not None and cancel.canceled:
            raise Canceled("Job canceled")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, CANCEL_CHECK_SECONDS))


def retryable_status(status: int) -> bool:
    """An answer worth asking again: too many requests, or a server error."""
    return status == 429 or status >= 500
