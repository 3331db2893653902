"""The one provider interface. Providers know models and bytes; nothing of tenants, money or
HTTP. They report progress through a callback and stop at the next step when canceled."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from pixelgate.catalog import TASK_NAMES, ImageOptions, ModelSpec, TaskKind
from pixelgate.errors import ModelUnavailable, ValidationError

ProgressCallback = Callable[[int, int], None]
"""Called with (steps done, total steps)."""


@dataclass(frozen=True)
class StepPreview:
    """A small, rough picture of an image while it is being made (a local model's current
    latents, projected to RGB without the VAE)."""

    data: bytes
    content_type: str
    width: int
    height: int

    def data_uri(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


PreviewCallback = Callable[[int, int, StepPreview], None]
"""Called with (steps done, total steps, the preview after that step), in place of the
progress call for that step."""


@dataclass(frozen=True)
class ProgressWithPreviews:
    """A progress callback that also takes previews of the current step: a caller that shows
    them passes this instead of a plain callback; providers that can make previews look for
    it with `previews_of`, the others just call it with (step, total)."""

    progress: ProgressCallback
    preview: PreviewCallback

    def __call__(self, step: int, total: int) -> None:
        self.progress(step, total)


def previews_of(progress: ProgressCallback) -> PreviewCallback | None:
    """Where previews of the current step go, when whoever follows this job shows them."""
    return progress.preview if isinstance(progress, ProgressWithPreviews) else None


class CancelToken:
    """Set by whoever cancels; read by the provider at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def canceled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Block until canceled or for `timeout` seconds; whether it was canceled."""
        return self._event.wait(timeout)


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


@dataclass(frozen=True)
class UpstreamTask:
    """A request a hosted provider has (or may have) accepted for a job, noted with the job
    before the provider is waited for, so that a later attempt (after a retry, a crash, a
    restart) resumes it instead of sending it again, and a second bill never happens."""

    provider: str
    task_id: str | None = None
    """The provider's id for the task, once it answered; None while it may have been sent."""
    polling_url: str | None = None
    deadline: float | None = None
    """When to give up waiting for it (seconds since the epoch)."""
    by_attempt: int | None = None
    """The attempt of the job that noted it; the note made when that attempt claimed the job
    (see `SENDS_ONE_REQUEST`) lets it send without a note of its own."""
    refused: bool = False
    """The provider refused the request before it accepted any work (no connection was made,
    or it answered 429 or a 5xx): it billed nothing for it (see `upstream.send_once`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> UpstreamTask | None:
        if not isinstance(data, dict) or not isinstance(data.get("provider"), str):
            return None
        return cls(
            provider=data["provider"],
            task_id=data.get("task_id"),
            polling_url=data.get("polling_url"),
            deadline=data.get("deadline"),
            by_attempt=data.get("by_attempt"),
            refused=data.get("refused") is True,
        )


class UpstreamState:
    """What earlier attempts of the job left with a hosted provider, one `UpstreamTask` per
    request (`earlier_of`), and where to note what this attempt sends (`note`, kept with the
    job before the call goes on). A request that makes all `n` images is request 0; an upstream
    that makes one image per call (`results.fan_out`) sends request `i` for image `i`, so each is
    sent at most once per job and resumed on its own."""

    def __init__(
        self,
        earlier: Mapping[int, UpstreamTask] | None = None,
        keep: Callable[[Mapping[int, UpstreamTask]], None] | None = None,
        *,
        attempt: int | None = None,
    ) -> None:
        self._tasks = dict(earlier or {})
        self._keep = keep
        self.attempt = attempt
        """This attempt of the job (its count of starts); None outside a job."""

    @property
    def earlier(self) -> UpstreamTask | None:
        """Request 0's record: the one request of a provider that makes all images at once."""
        return self._tasks.get(0)

    def earlier_of(self, index: int) -> UpstreamTask | None:
        return self._tasks.get(index)

    @property
    def billed_nothing(self) -> bool:
        """Whether every request noted was refused before the provider accepted any work (or
        none was noted): the provider cannot have billed the job, so another model may serve
        it. False as soon as one request may have been accepted (answered, or sent and
        unanswered: a timeout), whatever happened next."""
        return all(task.refused for task in self._tasks.values())

    def noted_by_this_attempt(self, task: UpstreamTask) -> bool:
        """Whether `task` is this attempt's own note (made when it claimed the job), not a
        request an earlier attempt may have sent."""
        return task.by_attempt is not None and task.by_attempt == self.attempt

    def note(self, task: UpstreamTask | None, *, index: int = 0) -> None:
        """Record `task` as request `index` (None: nothing was sent after all, e.g. the
        connection failed), and keep every record with the job."""
        if task is None:
            self._tasks.pop(index, None)
        else:
            self._tasks[index] = task
        if self._keep is not None:
            self._keep(dict(self._tasks))

    @staticmethod
    def data_of(records: Mapping[int, UpstreamTask]) -> dict[str, Any] | None:
        """The records as JSON (None when there are none), read back by `records_from`."""
        return {str(index): task.to_dict() for index, task in records.items()} or None

    @staticmethod
    def records_from(data: Any) -> dict[int, UpstreamTask]:
        """The records `data_of` wrote; a lone record (the first form of the note) is
        request 0's; anything unreadable is skipped."""
        if isinstance(data, dict) and "provider" in data:
            data = {"0": data}
        if not isinstance(data, dict):
            return {}
        records: dict[int, UpstreamTask] = {}
        for index, value in data.items():
            task = UpstreamTask.from_dict(value)
            if task is not None and str(index).isdigit():
                records[int(index)] = task
        return records


def sends_one_request(provider: object) -> bool:
    """Whether `provider` makes all of a job's images with one billed request (its request 0):
    the service then notes that request with the job in the write that claims it, instead of a
    write of its own just before sending (one transaction less on every request)."""
    return bool(getattr(provider, "sends_one_request", False))


@dataclass(frozen=True)
class ImageTask:
    """One unit of work for a provider: what to do, with which options and inputs."""

    kind: TaskKind
    options: ImageOptions
    image: ImageInput | None = None
    mask: ImageInput | None = None
    """White repaints, black keeps."""
    upstream: UpstreamState = field(default_factory=UpstreamState)
    """A hosted provider's request for this job, across attempts (`UpstreamTask`)."""
    own_key: SecretStr | None = None
    """The API key of the job's tenant for this provider, sent instead of the operator's
    (`providers.keys.TakesOwnKeys`); None: the operator's."""

    def require_support(self, spec: ModelSpec) -> None:
        """Refuse a task the catalog does not list for the model, before any work."""
        if not spec.supports(self.kind, masked=self.mask is not None):
            raise ValidationError(
                f"Model {spec.id!r} does not support {TASK_NAMES[self.kind]}", param="model"
            )


def require_available(spec: ModelSpec, reason: str | None) -> None:
    """Refuse `spec` when a provider gave a `reason` it cannot run here."""
    if reason is not None:
        raise ModelUnavailable(f"Model {spec.id!r} is unavailable: {reason}", param="model")


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
