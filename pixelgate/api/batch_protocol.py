"""The bodies of the batch routes (pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pixelgate.api.protocol import ErrorBody, GenerateRequest, ImageData, MetadataValue
from pixelgate.service.batches import MAX_ITEMS

ItemStatus = Literal["pending", "queued", "running", "succeeded", "failed", "canceled"]


class BatchCreate(BaseModel):
    """Up to 100 generate requests, each the body of `POST /v1/inference/images/generate`
    (its `async` is implied). All are checked before any is queued."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "requests": [
                        {"model": "pixelgate/shapes", "prompt": "a red circle", "seed": 1},
                        {"model": "pixelgate/shapes", "prompt": "a blue square", "seed": 2},
                    ]
                }
            ]
        },
    )

    requests: list[GenerateRequest] = Field(min_length=1, max_length=MAX_ITEMS)
    metadata: dict[str, MetadataValue] | None = Field(
        default=None, max_length=32, description="Stored with the batch and echoed back."
    )


class BatchCounts(BaseModel):
    """How many items are in each status."""

    pending: int = Field(description="Not yet submitted: waiting for the tenant's limits.")
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class BatchItemPublic(BaseModel):
    index: int = Field(description="The request's place in `requests`, from 0.")
    status: ItemStatus
    job_id: str | None = Field(description="Its job, once submitted.")
    error: ErrorBody | None = Field(
        default=None, description="Why it failed: its job's error, or what refused it."
    )
    outputs: list[ImageData] | None = Field(
        default=None, description="Its images with fresh links, once it succeeded."
    )


class BatchPublic(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    status: Literal["in_progress", "completed", "canceled"] = Field(
        description="`in_progress` while an item is pending, queued or running."
    )
    created_at: datetime
    canceled_at: datetime | None = None
    total: int
    counts: BatchCounts
    metadata: dict[str, MetadataValue] | None = None
    items: list[BatchItemPublic] | None = Field(
        default=None, description="Each item, in order (in `GET /v1/batches/{id}`, not lists)."
    )
