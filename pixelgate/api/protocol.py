"""The native API's request and response bodies (pydantic only; no logic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from pixelgate.service.jobs import ImageCommand

T = TypeVar("T")

MetadataValue = str | int | float | bool | None


class GenerateRequest(BaseModel):
    """Text-to-image. Besides the fields below, send the model's own options at the top level
    (`size`, `quality`, `width`, `height`, `num_steps`, `seed`, ...); `GET /v1/models` lists
    each model's options with their limits and defaults."""

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

    model: str = Field(description="A catalog model id or alias.")
    prompt: str | None = Field(default=None, description="What to draw.")
    response_format: Literal["url", "b64_json"] = "url"
    metadata: dict[str, MetadataValue] | None = Field(
        default=None, max_length=32, description="Stored with the job and echoed back."
    )
    async_: bool = Field(
        default=False,
        alias="async",
        description="Answer 202 at once with the job; same as the header Prefer: respond-async.",
    )

    def to_command(self) -> ImageCommand:
        options: dict[str, Any] = dict(self.model_extra or {})
        if self.prompt is not None:
            options["prompt"] = self.prompt
        return ImageCommand(
            task="generate",
            model=self.model,
            options=options,
            response_format=self.response_format,
            metadata=self.metadata,
        )


class Envelope(BaseModel, Generic[T]):
    status: Literal["ok"] = "ok"
    data: T


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = None


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


class GenerateResult(BaseModel):
    created: int
    data: list[ImageData]
    job_id: str
    model: str
    metadata: dict[str, MetadataValue] | None = None


class JobPublic(BaseModel):
    id: str
    object: Literal["job"] = "job"
    task: str
    model: str
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int
    cancel_requested: bool
    metadata: dict[str, MetadataValue] | None = None
    result: GenerateResult | None = None
    error: ErrorBody | None = None


class FilePublic(BaseModel):
    id: str
    object: Literal["file"] = "file"
    job_id: str | None
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


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
