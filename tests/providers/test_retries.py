"""When a failed upstream call is tried again: Retry-After, backoff with full jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pixelgate.providers.retries import RetryPolicy, retry_after_seconds

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    policy = RetryPolicy(max_retries=5, backoff_seconds=0.5, max_delay_seconds=3.0)
    rng = random.Random(1)

    for retry, ceiling in enumerate([0.5, 1.0, 2.0, 3.0, 3.0]):
        delays = [policy.delay(retry, None, rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole window, not bunched
        assert min(delays) < ceiling * 0.2


def test_retry_after_replaces_the_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=2, backoff_seconds=0.5, max_delay_seconds=20.0)
    rng = random.Random(1)

    assert policy.delay(0, "7", rng) == 7.0
    assert policy.delay(0, "3600", rng) == 20.0
