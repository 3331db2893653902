"""What the SDK hands back: plain dataclasses built from the API's JSON."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast

from pixelgate.errors import Canceled, Error, error_from_code

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from pixelgate.sdk.sse import ServerSentEvent

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
MetadataValue = str | int | float | bool | None
T = TypeVar("T")


class Page(list[T], Generic[T]):
    """A page of a list, newest first: its items, and where the pages around it start. Ask
    for the next (older) page with `after=page.last_id` while `has_more`; for the one before
    with `before=page.first_id`. `iter(...)` on a resource walks every page for you."""

    def __init__(
        self, items: Iterable[T], *, has_more: bool, first_id: str | None, last_id: str | None
    ) -> None:
        super().__init__(items)
        self.has_more = has_more
        self.first_id = first_id
        self.last_id = last_id

    def __repr__(self) -> str:
        return f"Page({list.__repr__(self)}, has_more={self.has_more})"


class ImageSource(Protocol):
    """Fetches an image's bytes through the client that produced it."""

    def download(self, image: Image) -> bytes: ...

    async def adownload(self, image: Image) -> bytes: ...


@dataclass(frozen=True)
class Image:
    """One generated image: inline (`b64_json`) or behind an expiring link (`url`).

    image = client.images.generate(model="local/tiny", prompt="a red circle").data[0]
    image.save("circle.png")
    print(image.seed, image.to_pil().size)
    """

    file_id: str
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    expires_at: datetime | None = None
    _source: ImageSource | None = field(default=None, repr=False, compare=False)

    def content(self) -> bytes:
        """The encoded image (PNG, JPEG or WebP): decoded from `b64_json`, or downloaded."""
        if self.b64_json is not None:
            return base64.b64decode(self.b64_json)
        return self._require_source().download(self)

    async def acontent(self) -> bytes:
        """`content()` for async code."""
        if self.b64_json is not None:
            return base64.b64decode(self.b64_json)
        return await self._require_source().adownload(self)

    def save(self, path: str | Path) -> Path:
        """Write the image's bytes to `path` and return it."""
        target = Path(path)
        target.write_bytes(self.content())
        return target

    async def asave(self, path: str | Path) -> Path:
        """`save()` for async code."""
        target = Path(path)
        target.write_bytes(await self.acontent())
        return target

    def to_pil(self) -> PILImage:
        """The image as a Pillow image (in async code: `PIL.Image.open(io.BytesIO(await
        image.acontent()))`)."""
        from PIL import Image as PILModule

        picture = PILModule.open(io.BytesIO(self.content()))
        picture.load()
        return picture

    def _require_source(self) -> ImageSource:
        if self._source is None:
            raise ValueError("This image has no b64_json and no client to download it with")
        return self._source

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], source: ImageSource | None = None) -> Image:
        return cls(
            file_id=str(body["file_id"]),
            url=body.get("url"),
            b64_json=body.get("b64_json"),
            revised_prompt=body.get("revised_prompt"),
            seed=body.get("seed"),
            expires_at=parse_datetime(body.get("expires_at")),
            _source=source,
        )


@dataclass(frozen=True)
class Cost:
    """What a job cost, as the server settled it: an exact `Decimal` and its currency.

    print(result.cost)  # 0.04 USD
    """

    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    @classmethod
    def from_dict(cls, body: Mapping[str, Any] | None) -> Cost | None:
        if not body:
            return None
        return cls(amount=Decimal(str(body["amount"])), currency=str(body["currency"]))


@dataclass(frozen=True)
class ImagesResponse:
    """The result of a generate request.

    result = client.images.generate(model="local/tiny", prompt="a cat", n=2)
    for index, image in enumerate(result.data):
        image.save(f"cat-{index}.png")
    """

    created: int
    data: list[Image]
    job_id: str
    model: str
    metadata: dict[str, MetadataValue] | None = None
    adjustments: list[dict[str, str]] | None = None
    """Edits: inputs the server resized to fit the model (`param`, `from`, `to`, `reason`)."""
    cached: bool = False
    """The images were served from the result cache (an identical earlier request's)."""
    cost: Cost | None = None
    """What the request cost (zero for a free model or a free cache hit)."""
    requested_model: str | None = None
    """The model asked for, when the request had fallbacks: `model` is the one that served."""

    @classmethod
    def from_dict(
        cls, body: Mapping[str, Any], source: ImageSource | None = None
    ) -> ImagesResponse:
        return cls(
            created=int(body["created"]),
            data=[Image.from_dict(item, source) for item in body["data"]],
            job_id=str(body["job_id"]),
            model=str(body["model"]),
            metadata=body.get("metadata"),
            adjustments=body.get("adjustments"),
            cached=bool(body.get("cached", False)),
            cost=Cost.from_dict(body.get("cost")),
            requested_model=body.get("requested_model"),
        )


@dataclass(frozen=True)
class RouteTry:
    """One model a job with fallbacks tried or passed over: `outcome` is `skipped`,
    `unavailable`, `failed` or `succeeded`."""

    model: str
    outcome: str
    error_code: str | None = None
    message: str | None = None

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> RouteTry:
        return cls(
            str(body["model"]), str(body["outcome"]), body.get("error_code"), body.get("message")
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed, as the server reported it."""

    code: str
    message: str
    param: str | None = None

    def to_exception(self) -> Error:
        """The matching `pixelgate.errors` exception."""
        return error_from_code(self.code, self.message, param=self.param)


@dataclass(frozen=True)
class Job:
    """A generate request's durable record.

    job = client.images.submit(model="local/tiny", prompt="a boat")
    job = client.jobs.wait(job.id)
    if job.status == "succeeded":
        job.result.data[0].save("boat.png")
    """

    id: str
    task: str
    model: str
    status: JobStatus
    created_at: datetime
    attempts: int
    cancel_requested: bool
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, MetadataValue] | None = None
    result: ImagesResponse | None = None
    error: JobError | None = None
    cost: Cost | None = None
    """What the job cost once it ended (zero when it paid nothing); None while it runs."""
    requested_model: str | None = None
    """The model the request asked for; `model` is the one serving it (a fallback, maybe)."""
    fallbacks: list[str] | None = None
    """The fallbacks left to try; None for a job with none."""
    tries: list[RouteTry] | None = None
    """Each model tried or passed over, in order; None for a job with no fallbacks."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def raise_for_status(self) -> Job:
        """Raise the job's error if it failed (`Canceled` if it was canceled); else return it."""
        if self.status == "canceled":
            raise Canceled(f"Job {self.id} was canceled")
        if self.status == "failed":
            error = self.error or JobError("INTERNAL_ERROR", f"Job {self.id} failed")
            raise error.to_exception()
        return self

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], source: ImageSource | None = None) -> Job:
        result = body.get("result")
        error = body.get("error")
        tries = body.get("tries")
        return cls(
            id=str(body["id"]),
            task=str(body["task"]),
            model=str(body["model"]),
            status=cast(JobStatus, body["status"]),
            created_at=require_datetime(body["created_at"]),
            attempts=int(body["attempts"]),
            cancel_requested=bool(body["cancel_requested"]),
            started_at=parse_datetime(body.get("started_at")),
            finished_at=parse_datetime(body.get("finished_at")),
            metadata=body.get("metadata"),
            result=ImagesResponse.from_dict(result, source) if result else None,
            error=JobError(error["code"], error["message"], error.get("param")) if error else None,
            cost=Cost.from_dict(body.get("cost")),
            requested_model=body.get("requested_model"),
            fallbacks=body.get("fallbacks"),
            tries=None if tries is None else [RouteTry.from_dict(item) for item in tries],
        )


BatchStatus = Literal["in_progress", "completed", "canceled"]
BatchItemStatus = Literal["pending", "queued", "running", "succeeded", "failed", "canceled"]


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch: `pending` until submitted, then its job's status; its error
    when it failed (its job's, or what refused it), its images once it succeeded."""

    index: int
    status: BatchItemStatus
    job_id: str | None = None
    error: JobError | None = None
    outputs: list[Image] = field(default_factory=list)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], source: ImageSource | None = None) -> BatchItem:
        error = body.get("error")
        return cls(
            index=int(body["index"]),
            status=cast(BatchItemStatus, body["status"]),
            job_id=body.get("job_id"),
            error=JobError(error["code"], error["message"], error.get("param")) if error else None,
            outputs=[Image.from_dict(item, source) for item in body.get("outputs") or []],
        )


@dataclass(frozen=True)
class Batch:
    """Many generate requests sent together, each run as a job.

    batch = client.batches.create([{"model": "local/tiny", "prompt": "a boat"}])
    batch = client.batches.get(batch.id)
    print(batch.counts)  # {"pending": 0, "queued": 1, ...}
    """

    id: str
    status: BatchStatus
    created_at: datetime
    total: int
    counts: dict[str, int]
    canceled_at: datetime | None = None
    metadata: dict[str, MetadataValue] | None = None
    items: list[BatchItem] | None = None
    """Each item, in order; None in a list of batches (get one to read them)."""

    @property
    def is_done(self) -> bool:
        """No item is pending, queued or running."""
        return self.status != "in_progress"

    @property
    def finished(self) -> int:
        """How many items have ended (succeeded, failed or canceled)."""
        return sum(self.counts.get(status, 0) for status in TERMINAL_STATUSES)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], source: ImageSource | None = None) -> Batch:
        items = body.get("items")
        return cls(
            id=str(body["id"]),
            status=cast(BatchStatus, body["status"]),
            created_at=require_datetime(body["created_at"]),
            total=int(body["total"]),
            counts={str(key): int(value) for key, value in body["counts"].items()},
            canceled_at=parse_datetime(body.get("canceled_at")),
            metadata=body.get("metadata"),
            items=None if items is None else [BatchItem.from_dict(i, source) for i in items],
        )


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's stream: `queued`, `running`, `progress` (`step` of `total`), then
    `succeeded`, `failed` or `canceled`, which carry the final `job`."""

    type: str
    data: dict[str, Any]
    id: str | None = None
    """Where to resume the stream from (`jobs.events(..., last_event_id=...)`)."""
    job: Job | None = None

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_STATUSES

    @property
    def step(self) -> int | None:
        return _optional_int(self.data.get("step"))

    @property
    def total(self) -> int | None:
        return _optional_int(self.data.get("total"))

    @classmethod
    def from_sse(cls, sse: ServerSentEvent, source: ImageSource | None = None) -> JobEvent:
        data = json.loads(sse.data) if sse.data else {}
        if not isinstance(data, dict):
            data = {"value": data}
        job = data.get("job")
        return cls(
            type=sse.event,
            data=data,
            id=sse.id,
            job=Job.from_dict(job, source) if isinstance(job, dict) else None,
        )


@dataclass(frozen=True)
class Model:
    """A catalog entry the caller may use."""

    id: str
    provider: str
    family: str
    modality: str
    capabilities: list[str]
    aliases: list[str]
    description: str
    available: bool
    unavailable_reason: str | None
    limits: dict[str, Any]
    defaults: dict[str, Any]
    prices: dict[str, str]
    options_schema: dict[str, Any]

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Model:
        return cls(
            id=str(body["id"]),
            provider=str(body["provider"]),
            family=str(body["family"]),
            modality=str(body["modality"]),
            capabilities=list(body.get("capabilities", [])),
            aliases=list(body.get("aliases", [])),
            description=str(body.get("description", "")),
            available=bool(body["available"]),
            unavailable_reason=body.get("unavailable_reason"),
            limits=dict(body.get("limits", {})),
            defaults=dict(body.get("defaults", {})),
            prices=dict(body.get("prices", {})),
            options_schema=dict(body.get("options_schema", {})),
        )


@dataclass(frozen=True)
class File:
    """A stored result, with a freshly signed `url`."""

    id: str
    job_id: str | None
    content_type: str
    size_bytes: int
    width: int
    height: int
    created_at: datetime
    expires_at: datetime | None
    url: str
    url_expires_at: datetime
    model: str | None = None
    """The model of the job that made it."""
    prompt: str | None = None
    """The prompt of the job that made it."""

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> File:
        return cls(
            id=str(body["id"]),
            job_id=body.get("job_id"),
            content_type=str(body["content_type"]),
            size_bytes=int(body["size_bytes"]),
            width=int(body["width"]),
            height=int(body["height"]),
            created_at=require_datetime(body["created_at"]),
            expires_at=parse_datetime(body.get("expires_at")),
            url=str(body["url"]),
            url_expires_at=require_datetime(body["url_expires_at"]),
            model=body.get("model"),
            prompt=body.get("prompt"),
        )


def media_type_of(data: bytes) -> str:
    """The media type of an image pixelgate makes (PNG, JPEG or WebP), by its signature."""
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def to_jsonable(value: Any) -> Any:
    """A dataclass from this module as JSON-ready data (private fields left out)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: to_jsonable(getattr(value, item.name))
            for item in dataclasses.fields(value)
            if not item.name.startswith("_")
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact, as the API sends it
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def parse_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value))


def require_datetime(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None
