"""When a failed request is sent again, and after how long."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
GATEWAY_STATUSES = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 60.0
"""A server that asks for a longer pause gets an error back instead of a hung caller."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    A 429 is retried for any method: the server refused before doing anything. Gateway errors
    (502, 503, 504) and broken connections are retried only for idempotent methods, so a
    generate request is never run twice.
    """

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def after_response(self, method: str, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None to give up."""
        if attempt >= self.max_retries:
            return None
        status = response.status_code
        if status != 429 and not (status in GATEWAY_STATUSES and method in IDEMPOTENT_METHODS):
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return self.backoff(attempt)
        return retry_after if retry_after <= MAX_RETRY_AFTER else None

    def after_transport_error(self, method: str, attempt: int) -> float | None:
        if attempt >= self.max_retries or method not in IDEMPOTENT_METHODS:
            return None
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
