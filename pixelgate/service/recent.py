"""What a replica trusts for a moment once it has read it: API keys and tenants, which every
request needs and which change rarely."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Generic, TypeVar

from pixelgate.clock import Clock

K = TypeVar("K")
V = TypeVar("V")

TRUSTED_FOR = timedelta(seconds=2)
"""How long a read is trusted without reading again. A change made through this process
applies at once (its service forgets what it had read); one made by another process within
this long."""


class ReadLately(Generic[K, V]):
    """Values read from the database lately, each trusted for `trusted_for` after its read."""

    def __init__(self, clock: Clock, *, trusted_for: timedelta = TRUSTED_FOR) -> None:
        self._clock = clock
        self._trusted_for = trusted_for
        self._reads: dict[K, tuple[datetime, V]] = {}

    def get(self, key: K) -> V | None:
        """The value read for `key` less than `trusted_for` ago; None when it must be read."""
        read = self._reads.get(key)
        if read is None:
            return None
        at, value = read
        # a clock set back does not stretch the trust: a read "from the future" is stale
        if not at <= self._clock.now() < at + self._trusted_for:
            return None
        return value

    def remember(self, key: K, value: V) -> None:
        self._reads[key] = (self._clock.now(), value)

    def forget(self, key: K) -> None:
        self._reads.pop(key, None)

    def forget_all(self) -> None:
        self._reads.clear()
