"""What a job keeps as JSON (its inputs, options and result), as typed records, and the one
codec that stores them.

The `jobs` table's JSON columns hold these records (`RecordJSON`): every write goes through
`to_json` and every read through `from_json`, whether it is an ORM load or a Core statement,
so no layer reads a job's JSON by key. The JSON shape is the one pixelgate has always written,
and `from_json` reads rows written by older versions (a missing optional key takes its
default, an unknown key is ignored), so no migration is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import JSON, Dialect
from sqlalchemy.types import TypeDecorator


@dataclass(frozen=True)
class Adjustment:
    """How pixelgate changed an input image or an option to fit the model, which the result
    reports: `param` went from `from_` to `to` (sizes as `WxH`, or an aspect ratio)."""

    param: str
    from_: str
    to: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"param": self.param, "from": self.from_, "to": self.to, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(str(data["param"]), str(data["from"]), str(data["to"]), str(data["reason"]))


@dataclass(frozen=True)
class StoredInput:
    """An input image kept with its job: its blob, format and size, and how it was resized to
    fit the model, when it was."""

    blob_key: str
    content_type: str
    width: int
    height: int
    adjustment: Adjustment | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "blob_key": self.blob_key,
            "content_type": self.content_type,
            "width": self.width,
            "height": self.height,
        }
        if self.adjustment is not None:
            data["adjustment"] = self.adjustment.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        adjustment = data.get("adjustment")
        return cls(
            blob_key=str(data["blob_key"]),
            content_type=str(data["content_type"]),
            width=int(data["width"]),
            height=int(data["height"]),
            adjustment=Adjustment.from_json(adjustment) if adjustment else None,
        )


@dataclass(frozen=True)
class JobInputs:
    """A job's input images by role, and the options pixelgate changed to fit the model."""

    image: StoredInput | None = None
    mask: StoredInput | None = None
    option_adjustments: tuple[Adjustment, ...] = ()

    @property
    def images(self) -> dict[str, StoredInput]:
        """The input images by role (`image`, `mask`)."""
        return {
            role: stored
            for role, stored in (("image", self.image), ("mask", self.mask))
            if stored is not None
        }

    @property
    def adjustments(self) -> list[Adjustment]:
        """Every adjustment, as the result lists them: image first, then mask, then options."""
        found = [stored.adjustment for stored in self.images.values() if stored.adjustment]
        return [*found, *self.option_adjustments]

    @property
    def blob_keys(self) -> set[str]:
        """The blobs the inputs use."""
        return {stored.blob_key for stored in self.images.values()}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {role: stored.to_json() for role, stored in self.images.items()}
        if self.option_adjustments:
            data["adjustments"] = [item.to_json() for item in self.option_adjustments]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        image, mask = data.get("image"), data.get("mask")
        return cls(
            image=StoredInput.from_json(image) if image else None,
            mask=StoredInput.from_json(mask) if mask else None,
            option_adjustments=tuple(
                Adjustment.from_json(item) for item in data.get("adjustments") or ()
            ),
        )


@dataclass(frozen=True)
class JobOptions:
    """A job's validated options (the model family's `catalog.ImageOptions`, dumped as JSON),
    seed included, so a resumed job makes the same images. The family's model reads them back
    (`Catalog.validate_options(spec, options.values, ...)`); what every surface shows of any
    job is here by name."""

    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str | None:
        return self._text("prompt")

    @property
    def user(self) -> str | None:
        """The caller's end user, as the request named them."""
        return self._text("user")

    @property
    def size(self) -> str | None:
        """The output size as `WxH` (or the size name a model takes), when the options set it."""
        size = self._text("size")
        width, height = self.values.get("width"), self.values.get("height")
        if size is None and isinstance(width, int) and isinstance(height, int):
            return f"{width}x{height}"
        return size

    @property
    def quality(self) -> str | None:
        return self._text("quality")

    @property
    def output_format(self) -> str | None:
        return self._text("output_format")

    @property
    def background(self) -> str | None:
        return self._text("background")

    def _text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return dict(self.values)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(dict(data))


@dataclass(frozen=True)
class ResultImage:
    """One image a job made: its stored file, the seed that drew it and the prompt the model
    used, when the provider says."""

    file_id: str
    seed: int | None = None
    revised_prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "seed": self.seed, "revised_prompt": self.revised_prompt}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        seed, revised = data.get("seed"), data.get("revised_prompt")
        return cls(
            file_id=str(data["file_id"]),
            seed=int(seed) if seed is not None else None,
            revised_prompt=str(revised) if revised is not None else None,
        )


@dataclass(frozen=True)
class JobResult:
    """What a job made, once it succeeded: its images and when (Unix seconds). While it runs,
    `upstream` holds what its hosted provider accepted (`providers.UpstreamState.data_of`), so
    that no attempt sends a billed request twice; the images replace it."""

    created: int = 0
    images: tuple[ResultImage, ...] = ()
    upstream: Mapping[str, Any] | None = None

    @property
    def file_ids(self) -> list[str]:
        return [image.file_id for image in self.images]

    def to_json(self) -> dict[str, Any]:
        if self.upstream is not None:
            return {"upstream": dict(self.upstream)}
        return {"created": self.created, "images": [image.to_json() for image in self.images]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        upstream = data.get("upstream")
        return cls(
            created=int(data.get("created") or 0),
            images=tuple(ResultImage.from_json(item) for item in data.get("images") or ()),
            upstream=dict(upstream) if isinstance(upstream, Mapping) else None,
        )


@dataclass(frozen=True)
class RouteCandidate:
    """A model the job may fall back to: its id, the request's options validated for it (as
    `JobOptions` holds them), its price per image for the tenant, in micro-units, and whether
    it runs with the tenant's own key for its provider."""

    model: str
    options: Mapping[str, Any]
    price: int
    own_key: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "options": dict(self.options),
            "price": self.price,
            "own_key": self.own_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            str(data["model"]),
            dict(data.get("options") or {}),
            int(data.get("price") or 0),
            bool(data.get("own_key", False)),
        )


@dataclass(frozen=True)
class RouteTry:
    """One model the job tried, or passed over: `outcome` is `skipped` (it does not take the
    request's options), `unavailable` (it cannot run here), `failed` (it failed having billed
    nothing, so the next model served) or `succeeded`; with the error's code and message."""

    model: str
    outcome: str
    error_code: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "outcome": self.outcome,
            "error_code": self.error_code,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        code, message = data.get("error_code"), data.get("message")
        return cls(
            model=str(data["model"]),
            outcome=str(data["outcome"]),
            error_code=str(code) if code is not None else None,
            message=str(message) if message is not None else None,
        )


@dataclass(frozen=True)
class JobRoute:
    """The models a job may run on, for a request that named fallbacks (or whose model has a
    default route in the catalog): the model asked for, the price per image of the model the
    job is on now (`jobs.model`), the candidates left in order, and every try so far."""

    requested: str
    price: int
    candidates: tuple[RouteCandidate, ...] = ()
    tries: tuple[RouteTry, ...] = ()

    def tried(self, attempt: RouteTry) -> JobRoute:
        return JobRoute(self.requested, self.price, self.candidates, (*self.tries, attempt))

    def next_candidate(self) -> tuple[RouteCandidate, JobRoute] | None:
        """The next model to try and the route once the job moves to it; None when none is
        left."""
        if not self.candidates:
            return None
        first, *rest = self.candidates
        return first, JobRoute(self.requested, first.price, tuple(rest), self.tries)

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "price": self.price,
            "candidates": [candidate.to_json() for candidate in self.candidates],
            "tries": [attempt.to_json() for attempt in self.tries],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            requested=str(data["requested"]),
            price=int(data.get("price") or 0),
            candidates=tuple(RouteCandidate.from_json(c) for c in data.get("candidates") or ()),
            tries=tuple(RouteTry.from_json(t) for t in data.get("tries") or ()),
        )


class _Record(Protocol):
    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self: ...


R = TypeVar("R", bound=_Record)


class RecordJSON(TypeDecorator[R]):
    """A JSON column holding one kind of record: written by its `to_json`, read by its
    `from_json`."""

    impl = JSON
    cache_ok = True

    def __init__(self, record: type[R]) -> None:
        super().__init__()
        self.record = record

    def process_bind_param(self, value: R | None, dialect: Dialect) -> Any:
        return None if value is None else value.to_json()

    def process_result_value(self, value: Any, dialect: Dialect) -> R | None:
        return None if value is None else self.record.from_json(value)
