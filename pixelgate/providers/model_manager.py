"""Which local models are in memory: loaded on first use (or preloaded), kept under a memory
budget per device, the least recently used idle one evicted first.

A model in use (a lease is open) is never evicted. Eviction drops every reference the manager
holds, collects garbage and hands freed memory back to the system (CUDA cache, glibc arenas),
so the process really shrinks.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedModel:
    """A model's pipelines (sharing one set of weights) and where they live."""

    pipelines: dict[str, Any]
    """By task: `text-to-image`, `image-to-image`, `inpaint`; made from the first on demand."""
    device: str
    """`cpu`, `cuda` or `mps`: whose budget the model counts against."""
    nbytes: int
    """Bytes of its weights and buffers."""
    family: str
    run_lock: threading.Lock = field(default_factory=threading.Lock)
    """One pipeline call at a time on this instance."""


@dataclass(eq=False)
class _Resident:
    model: LoadedModel
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)


Loader = Callable[[str], LoadedModel]
Estimator = Callable[[str], tuple[str, int]]
"""A model's device and its expected size in bytes, before it is loaded."""


class ModelManager:
    def __init__(
        self,
        load: Loader,
        estimate: Estimator,
        *,
        budgets: dict[str, int | None],
    ) -> None:
        """`budgets` maps a device (`cpu`, `cuda`, `mps`) to the bytes its resident models may
        take; None or a missing device is no limit."""
        self._load = load
        self._estimate = estimate
        self._budgets = budgets
        self._cond = threading.Condition()
        self._resident: dict[str, _Resident] = {}
        self._loading: set[str] = set()
        self.loads = 0
        self.evictions = 0

    # -- using ----------------------------------------------------------------------------

    @contextmanager
    def use(self, key: str) -> Iterator[LoadedModel]:
        """The model, loaded if needed; it stays resident until the block ends."""
        model = self._acquire(key)
        try:
            yield model
        finally:
            with self._cond:
                resident = self._resident[key]
                resident.leases -= 1
                resident.last_used = time.monotonic()
                self._cond.notify_all()

    def preload(self, keys: list[str]) -> None:
        """Load these models now (in order), as if each had been used once."""
        for key in keys:
            with self.use(key):
                pass

    def resident(self) -> list[str]:
        """Resident models, least recently used first."""
        with self._cond:
            ordered = sorted(self._resident.items(), key=lambda item: item[1].last_used)
            return [key for key, _ in ordered]

    def used_bytes(self, device: str) -> int:
        with self._cond:
            return self._used(device)

    def evict(self, key: str) -> bool:
        """Unload one idle model now; False when it is not resident or is in use."""
        with self._cond:
            resident = self._resident.get(key)
            if resident is None or resident.leases:
                return False
            del self._resident[key]
        _free(resident)
        return True

    # -- loading and evicting -------------------------------------------------------------

    def _acquire(self, key: str) -> LoadedModel:
        with self._cond:
            while True:
                resident = self._resident.get(key)
                if resident is not None:
                    resident.leases += 1
                    resident.last_used = time.monotonic()
                    return resident.model
                if key not in self._loading:
                    break
                self._cond.wait()  # someone else loads it; take theirs
            self._loading.add(key)
        try:
            device, expected = self._estimate(key)
            self._make_room(key, device, expected)
            started = time.monotonic()
            model = self._load(key)
            log.info(
                "loaded model %s on %s: %.0f MB in %.1fs",
                key,
                model.device,
                model.nbytes / 2**20,
                time.monotonic() - started,
            )
            with self._cond:
                self._resident[key] = _Resident(model, leases=1)
                self.loads += 1
            # the estimate may have been low: settle the budget with the measured size
            self._make_room(key, model.device, 0)
            return model
        finally:
            with self._cond:
                self._loading.discard(key)
                self._cond.notify_all()

    def _make_room(self, key: str, device: str, incoming: int) -> None:
        """Evict idle models, least recently used first, until `incoming` more bytes fit.
        Waits for busy models to finish when only they could make room; loads over budget
        when nothing else is resident."""
        budget = self._budgets.get(device)
        if budget is None:
            return
        while True:
            with self._cond:
                if self._used(device) + incoming <= budget:
                    return
                others = [
                    (name, resident)
                    for name, resident in self._resident.items()
                    if name != key and resident.model.device == device
                ]
                if not others:
                    log.warning("model %s alone exceeds the %s memory budget", key, device)
                    return
                idle = [item for item in others if item[1].leases == 0]
                if not idle:
                    self._cond.wait(1.0)  # never evict work in flight: wait for it to end
                    continue
                name, victim = min(idle, key=lambda item: item[1].last_used)
                del self._resident[name]
                self.evictions += 1
            log.info(
                "evicting model %s (%.0f MB) from %s", name, victim.model.nbytes / 2**20, device
            )
            _free(victim)

    def _used(self, device: str) -> int:
        return sum(r.model.nbytes for r in self._resident.values() if r.model.device == device)


def _free(resident: _Resident) -> None:
    """Drop the pipelines and give their memory back to the system."""
    device = resident.model.device
    resident.model.pipelines.clear()
    del resident
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
    elif device == "mps":
        import torch

        torch.mps.empty_cache()
    release_heap()


def release_heap() -> None:
    """Return free heap pages to the system (glibc keeps them otherwise, and RSS stays up)."""
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
