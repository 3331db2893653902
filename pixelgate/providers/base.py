"""The one provider interface. Providers know models and bytes; nothing of tenants, money or
HTTP. They report progress through a callback and stop at the next step when canceled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pixelgate.catalog import ImageOptions, ModelSpec

ProgressCallback = Callable[[int, int], None]
"""Called with (steps done, total steps)."""


class CancelToken:
    """Set by whoever cancels; read by the provider at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def canceled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str
    width: int
    height: int
    seed: int | None = None
    revised_prompt: str | None = None


@dataclass(frozen=True)
class ImageInput:
    """An image the caller sent, already checked and decoded once for its size."""

    data: bytes
    content_type: str
    width: int
    height: int


TaskKind = Literal["generate", "edit", "variation", "remove-background"]


@dataclass(frozen=True)
class ImageTask:
    """One unit of work for a provider: what to do, with which options and inputs."""

    kind: TaskKind
    options: ImageOptions
    image: ImageInput | None = None
    mask: ImageInput | None = None
    """White repaints, black keeps."""


class Provider(Protocol):
    name: str

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        """Why `spec` cannot run here (no key, no weights), or None when it can."""
        ...

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        """Do `task`, making `task.options.n` images. Raises `pixelgate.errors.Canceled` when
        `cancel` was set, other `pixelgate.errors.Error`s for failures the caller should see
        (a task kind the provider lacks is a `ValidationError` on `model`)."""
        ...
