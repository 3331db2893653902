"""The native API's request and response bodies (pydantic only; no logic)."""

from __future__ import annotations

import base64
from abc import abstractmethod
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pixelgate.catalog import TaskKind
from pixelgate.catalog.options import name_aliases, option_names
from pixelgate.errors import ValidationError
from pixelgate.service.inputs import ImageUpload
from pixelgate.service.jobs import ImageCommand
from pixelgate.service.webhook_targets import Webhook, WebhookEvent, webhook_of

T = TypeVar("T")

MetadataValue = str | int | float | bool | None

Fallbacks = Annotated[
    list[str] | None,
    Field(
        description="Models (ids or aliases, at most 3) to serve the request, in order, when "
        "`model` cannot run here, is rate-limited upstream or fails before its provider billed "
        "anything; each must do the same task and be allowed to the key. Unset: the catalog's "
        "default route for the model, if any; `[]`: none. Options a fallback does not take pass "
        "it over (a `skipped` try on the job).",
    ),
]


class AliasedRequest(BaseModel):
    """A native request body that also takes its fields and the model's options under the
    names the product's source documents use: camelCase (`modelName`, `aspectRatio`,
    `negativePrompt`, `numberOfImagesToGenerate`, ...) and the serverless `model_name`. One
    field sent under two names with different values is refused, naming both."""

    aliases: ClassVar[Mapping[str, str]] = {}
    """Alias → field or option name; set for each request model by `with_aliases`."""

    @model_validator(mode="before")
    @classmethod
    def _own_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(alias in data for alias in cls.aliases):
            return data
        renamed = {key: value for key, value in data.items() if key not in cls.aliases}
        sent_as: dict[str, str] = {name: name for name in renamed}
        for alias, name in cls.aliases.items():
            if alias not in data:
                continue
            if name in renamed and renamed[name] != data[alias]:
                raise PydanticCustomError(
                    "invalid_alias",
                    "{first} and {second} are one field, sent as {first_value} and "
                    "{second_value}; send one",
                    {
                        "param": alias,
                        "first": sent_as[name],
                        "second": alias,
                        "first_value": repr(renamed[name]),
                        "second_value": repr(data[alias]),
                    },
                )
            renamed[name] = data[alias]
            sent_as.setdefault(name, alias)
        return renamed


Aliased = TypeVar("Aliased", bound=AliasedRequest)


class WebhookFields(BaseModel):
    """The webhook fields every request that makes a job takes (generate, edit, remove
    background, upscale, and each item of a batch): pixelgate POSTs the job's
    events there, signed with the tenant's secret (`GET /v1/webhooks/secret`)."""

    webhook: str | None = Field(
        default=None,
        description="An http(s) URL to POST the job's events to (Standard Webhooks, signed). "
        "Private and loopback addresses are refused unless the operator allows the host.",
    )
    webhook_events: list[WebhookEvent] | None = Field(
        default=None,
        description="Which events to send: any of queued, running, progress, succeeded, failed, "
        "canceled (a JSON list, or comma-separated in a form); default: succeeded, failed, "
        "canceled.",
    )

    @field_validator("webhook_events", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):  # a form field: `succeeded,failed`
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def webhook_request(self) -> Webhook | None:
        """The webhook asked for, its event names checked (its URL is checked on submit)."""
        return webhook_of(self.webhook, self.webhook_events)


def with_aliases(model: type[Aliased]) -> type[Aliased]:
    """Give `model` the aliases of its fields (by their wire names) and of every option."""
    fields = {field.alias or name for name, field in model.model_fields.items()}
    model.aliases = name_aliases(fields | option_names())
    return model


Uploads = Mapping[str, bytes]
"""Files sent with a multipart body, by form field (`image`, `mask`)."""

NO_UPLOADS: Uploads = MappingProxyType({})


class JobRequest(AliasedRequest, WebhookFields):
    """The fields every request that makes a job shares (generate, edit, remove background,
    upscale), and the one way each turns itself into the service's command (`to_command`)."""

    model: str = Field(description="A catalog model id or alias.")
    response_format: Literal["url", "b64_json"] = "url"
    metadata: dict[str, MetadataValue] | None = Field(
        default=None, max_length=32, description="Stored with the job and echoed back."
    )
    async_: bool = Field(
        default=False,
        alias="async",
        description="Answer 202 at once with the job; same as the header Prefer: respond-async.",
    )

    @abstractmethod
    def to_command(self, files: Uploads = NO_UPLOADS) -> ImageCommand:
        """The service command; `files` are the multipart uploads the route takes."""

    def command(
        self,
        task: TaskKind,
        options: Mapping[str, Any],
        *,
        image: ImageUpload | None = None,
        mask: ImageUpload | None = None,
        use_cache: bool = True,
        fallbacks: list[str] | None = None,
    ) -> ImageCommand:
        """The command for `task` with the shared fields: the model's options are the extra
        fields sent at the top level, then the request's own `options` that are set."""
        sent = {name: value for name, value in options.items() if value is not None}
        return ImageCommand(
            task=task,
            model=self.model,
            options={**(self.model_extra or {}), **sent},
            response_format=self.response_format,
            metadata=self.metadata,
            image=image,
            mask=mask,
            use_cache=use_cache,
            webhook=self.webhook_request(),
            fallbacks=None if fallbacks is None else tuple(fallbacks),
        )


class CachedJobRequest(JobRequest):
    """A request whose result can be cached (a model's with a fixed seed): generate, edit and
    upscale; the field `cache` opts out."""

    cache: bool = Field(
        default=True,
        description="False skips the result cache; same as the header Cache-Control: no-cache.",
    )


@with_aliases
class GenerateRequest(CachedJobRequest):
    """Text-to-image. Besides the fields below, send the model's own options at the top level
    (`width`, `height`, `num_steps`, `seed`, ...); `GET /v1/models` lists each model's options
    with their limits and defaults. Every model also takes `size` (`WxH`, fitted to its limits)
    and `quality` (`auto`, `low`, `medium`, `standard`, `high`, `hd`: its own setting, or its
    steps); `adjustments` in the result says what it got when that differs. Fields and options
    are also taken in camelCase (`modelName`, `negativePrompt`, `aspectRatio`, ...), with
    `numberOfImagesToGenerate` for `n` and `model_name` for `model`."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"model": "local/tiny", "prompt": "a red circle", "seed": 7},
                {"model": "dall-e-3", "prompt": "a lighthouse", "size": "1792x1024"},
            ]
        },
    )

    prompt: str | None = Field(default=None, description="What to draw.")
    fallbacks: Fallbacks = None

    def to_command(self, files: Uploads = NO_UPLOADS) -> ImageCommand:
        return self.command(
            "generate",
            {"prompt": self.prompt},
            use_cache=self.cache,
            fallbacks=self.fallbacks,
        )


@with_aliases
class EditRequest(CachedJobRequest):
    """Image-to-image or inpainting. The input image and the optional mask (white repaints,
    black keeps) come as base64 (`input_image`, `mask_image`) or as ids of stored results
    (`input_image_file_id`, `mask_image_file_id`). Send the model's own options at the top
    level (`strength`, `num_steps`, `guidance_scale`, `seed`, ..., and `size` and `quality` as
    for generate). The same fields, with the images as files `image` and `mask`, are accepted
    as multipart/form-data. Names are also taken in camelCase, as for generate."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "model": "local/tiny",
                    "prompt": "a red circle",
                    "input_image": "<base64 PNG>",
                    "strength": 0.6,
                    "seed": 7,
                }
            ]
        },
    )

    prompt: str | None = Field(default=None, description="What to draw.")
    input_image: str | None = Field(default=None, description="The image to edit, base64.")
    input_image_file_id: str | None = Field(
        default=None, description="Or the id of a stored result to edit."
    )
    mask_image: str | None = Field(
        default=None, description="Inpainting mask, base64: white repaints, black keeps."
    )
    mask_image_file_id: str | None = Field(default=None, description="Or a stored mask's id.")
    fallbacks: Fallbacks = None

    def to_command(self, files: Uploads = NO_UPLOADS) -> ImageCommand:
        return self.command(
            "edit",
            {"prompt": self.prompt},
            image=_upload("image", files.get("image"), self.input_image, self.input_image_file_id),
            mask=_upload("mask", files.get("mask"), self.mask_image, self.mask_image_file_id),
            use_cache=self.cache,
            fallbacks=self.fallbacks,
        )


def _upload(
    field: str, file: bytes | None, b64: str | None, file_id: str | None
) -> ImageUpload | None:
    """One input from whichever of its three forms was sent; base64 is decoded here."""
    json_name = "input_image" if field == "image" else "mask_image"
    sent = [
        name
        for name, value in ((field, file), (json_name, b64), (json_name + "_file_id", file_id))
        if value is not None
    ]
    if len(sent) > 1:
        raise ValidationError(f"Send {field} once; got {' and '.join(sent)}", param=sent[1])
    if file is not None:
        return ImageUpload(field, data=file)
    if file_id is not None:
        return ImageUpload(json_name + "_file_id", file_id=file_id)
    if b64 is None:
        return None
    _, _, payload = b64.rpartition(",")  # a data: URL's header is allowed
    try:
        return ImageUpload(json_name, data=base64.b64decode(payload, validate=True))
    except ValueError:
        raise ValidationError(f"{json_name} is not valid base64", param=json_name) from None


class Envelope(BaseModel, Generic[T]):
    status: Literal["ok"] = "ok"
    data: T


class ListEnvelope(Envelope[list[T]], Generic[T]):
    """A page of a list, newest first, paged as OpenAI's lists are: pass `last_id` as
    `after` for the next (older) page, `first_id` as `before` for the previous (newer) one."""

    object: Literal["list"] = "list"
    has_more: bool = Field(
        description="More items follow: older ones (no cursor, or `after`), newer ones (`before`)."
    )
    first_id: str | None = Field(description="The first item's id; null on an empty page.")
    last_id: str | None = Field(description="The last item's id; null on an empty page.")


class Deleted(BaseModel):
    """What a DELETE answers (OpenAI's shape)."""

    id: str
    object: Literal["file", "job"]
    deleted: Literal[True] = True


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = None


class CostPublic(BaseModel):
    """What a job cost, as its settlement charged it: exact, a decimal string."""

    amount: str = Field(
        description="A decimal string (never a float), e.g. `0.04`; `0.00` for a free model, a "
        "failed or canceled job and a cache hit served free.",
        examples=["0.04"],
    )
    currency: str = Field(description="ISO 4217 code of the amount.", examples=["USD"])


class ErrorEnvelope(BaseModel):
    status: Literal["error"] = "error"
    error: ErrorBody


class ImageData(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    file_id: str
    expires_at: datetime | None = Field(default=None, description="When `url` stops working.")


class Adjustment(BaseModel):
    """An input pixelgate resized, or an option it translated, so the model could take it (a
    `size` fitted to the model's limits, a `quality` turned into its own setting or ignored)."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    param: str = Field(
        description="The input, `image` or `mask`, or the option: `size` (the requested width "
        "and height) or `quality`."
    )
    from_: str = Field(alias="from", description="As sent: a size `WxH`, or the option's value.")
    to: str = Field(
        description="What the model got: `WxH`, an aspect ratio `W:H`, the model's own value "
        "(`hd`, `num_steps=8`), or `ignored`."
    )
    reason: str


class RouteTryPublic(BaseModel):
    """One model a job with fallbacks tried, or passed over."""

    model: str
    outcome: Literal["skipped", "unavailable", "failed", "succeeded"] = Field(
        description="`skipped`: it does not take the request's options; `unavailable`: it "
        "cannot run here; `failed`: it failed having billed nothing, so the next model was "
        "tried; `succeeded`: it served the job."
    )
    error_code: str | None = None
    message: str | None = None


class GenerateResult(BaseModel):
    created: int
    data: list[ImageData]
    job_id: str
    model: str = Field(description="The model that made the images (a fallback, maybe).")
    requested_model: str | None = Field(
        default=None,
        description="The model the request asked for, when a fallback route was in play.",
    )
    metadata: dict[str, MetadataValue] | None = None
    cached: bool = Field(default=False, description="Served from the result cache.")
    adjustments: list[Adjustment] | None = Field(
        default=None,
        description="Inputs resized or options translated to fit the model, when any were.",
    )
    cost: CostPublic | None = Field(default=None, description="What the job cost.")


class JobPublic(BaseModel):
    id: str
    object: Literal["job"] = "job"
    task: str
    model: str = Field(
        description="The model that serves the job: the one asked for, or the fallback it moved to."
    )
    requested_model: str = Field(description="The model the request asked for.")
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int
    cancel_requested: bool
    cached: bool = False
    metadata: dict[str, MetadataValue] | None = None
    user: str | None = Field(default=None, description="The end user the request named.")
    result: GenerateResult | None = None
    error: ErrorBody | None = None
    cost: CostPublic | None = Field(
        default=None,
        description="What the job cost, once it ended (settled; `0.00` when it paid nothing); "
        "null while it is queued or running.",
    )
    fallbacks: list[str] | None = Field(
        default=None,
        description="The fallbacks still left to try, in order; null for a job with none.",
    )
    tries: list[RouteTryPublic] | None = Field(
        default=None,
        description="Each model tried or passed over, in order; null for a job with no fallbacks.",
    )


class FilePublic(BaseModel):
    id: str
    object: Literal["file"] = "file"
    job_id: str | None
    model: str | None = Field(default=None, description="The model of the job that made it.")
    prompt: str | None = Field(default=None, description="The prompt of the job that made it.")
    content_type: str
    size_bytes: int
    width: int
    height: int
    created_at: datetime
    expires_at: datetime | None
    url: str
    url_expires_at: datetime


class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(
        description="Unix time of this answer (OpenAI's field; catalog models carry no date)."
    )
    owned_by: str = Field(description="The provider (OpenAI's field).")
    provider: str
    family: str
    modality: str
    capabilities: list[str]
    aliases: list[str]
    description: str
    available: bool
    unavailable_reason: str | None = None
    limits: dict[str, Any]
    defaults: dict[str, Any]
    prices: dict[str, str]
    options_schema: dict[str, Any] = Field(description="JSON Schema of the model's options.")


class ModelEnvelope(Envelope[ModelPublic]):
    """One model in the native envelope, with OpenAI's model object (`id`, `object`,
    `created`, `owned_by`) beside it: the body OpenAI's `GET /v1/models/{model}` returns, so
    the `openai` SDKs' `models.retrieve` reads it as is."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(Envelope[list[ModelPublic]]):
    """The native envelope, which with `object: "list"` (and `object`, `created`, `owned_by` in
    each model) is also the body OpenAI's `GET /v1/models` returns: one path serves both."""

    object: Literal["list"] = "list"


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
