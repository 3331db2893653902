"""Rate and concurrency limits, per API key and per tenant.

Requests per minute and images per day use the `limits` library's moving windows (memory now;
Redis in a cluster, through the storage URI). Concurrent jobs are counted from the database,
the source of truth, under a lock so two requests cannot both take the last slot.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute, storage, strategies

from pixelgate.errors import RateLimited


@dataclass(frozen=True)
class LimitValues:
    requests_per_minute: int | None = None
    images_per_day: int | None = None
    concurrent_jobs: int | None = None

    def over(self, configured: dict[str, Any] | None) -> LimitValues:
        """These defaults, with what a tenant or key sets replacing them."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update({k: v for k, v in (configured or {}).items() if k in values})
        return LimitValues(**values)


@dataclass(frozen=True)
class Subject:
    """Whose limits: a tenant or an API key."""

    kind: str
    id: str
    limits: LimitValues


class RateLimits:
    def __init__(
        self,
        storage_uri: str = "memory://",
        *,
        redis_url: str | None = None,
        concurrency_retry_after: float = 1.0,
    ) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))
        # in a cluster the check-then-insert must exclude other replicas too
        self._lock: AbstractContextManager[Any] = (
            _redis_lock(redis_url) if redis_url else threading.Lock()
        )
        self._concurrency_retry_after = concurrency_retry_after

    def check_request(self, subjects: list[Subject], *, images: int) -> None:
        """Count one request of `images` images against every subject, or refuse it whole."""
        checks: list[tuple[RateLimitItem, Subject, int, str]] = []
        for subject in subjects:
            per_minute, per_day = subject.limits.requests_per_minute, subject.limits.images_per_day
            if per_minute is not None:
                checks.append(
                    (RateLimitItemPerMinute(per_minute), subject, 1, "requests per minute")
                )
            if per_day is not None:
                checks.append((RateLimitItemPerDay(per_day), subject, images, "images per day"))
        for item, subject, cost, what in checks:
            if cost > item.amount or not self._limiter.test(
                item, subject.kind, subject.id, cost=cost
            ):
                raise RateLimited(
                    f"Rate limit reached: {item.amount} {what} for this {subject.kind}",
                    retry_after=self._retry_after(item, subject),
                )
        for item, subject, cost, _ in checks:
            self._limiter.hit(item, subject.kind, subject.id, cost=cost)

    @contextmanager
    def concurrency_slot(
        self, subjects: list[Subject], count_active: Callable[[Subject], int]
    ) -> Iterator[None]:
        """Hold the lock while checking active jobs and recording the new one; with no
        concurrency limit to keep, there is nothing to check and nobody waits."""
        limited = [s for s in subjects if s.limits.concurrent_jobs is not None]
        if not limited:
            yield
            return
        with self._lock:
            for subject in limited:
                limit = subject.limits.concurrent_jobs
                assert limit is not None
                if count_active(subject) >= limit:
                    raise RateLimited(
                        f"Too many jobs at once: {limit} queued or running for this {subject.kind}",
                        retry_after=self._concurrency_retry_after,
                    )
            yield

    def _retry_after(self, item: RateLimitItem, subject: Subject) -> float:
        stats = self._limiter.get_window_stats(item, subject.kind, subject.id)
        return float(max(1, math.ceil(stats.reset_time - time.time())))


def _redis_lock(url: str) -> AbstractContextManager[Any]:
    import redis

    lock: AbstractContextManager[Any] = redis.Redis.from_url(url).lock(
        "pixelgate:concurrency", timeout=10
    )
    return lock
