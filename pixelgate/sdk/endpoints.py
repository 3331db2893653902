"""Endpoint paths and request bodies, shared by the sync and async resources."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pixelgate.sdk.types import MetadataValue

ResponseFormat = Literal["url", "b64_json"]


def generate_body(
    *,
    model: str,
    prompt: str,
    response_format: ResponseFormat,
    metadata: dict[str, MetadataValue] | None,
    options: dict[str, Any],
    run_async: bool,
) -> dict[str, Any]:
    """The JSON of `POST /v1/inference/images/generate`: model options sit at the top level."""
    body: dict[str, Any] = {**options, "model": model, "prompt": prompt}
    body["response_format"] = response_format
    if metadata is not None:
        body["metadata"] = metadata
    body["async"] = run_async
    return body


REMOVE_BACKGROUND_PATH = "/v1/inference/images/remove-background"
EDIT_PATH = "/v1/inference/images/edit"
JobStatusFilter = Literal["queued", "running", "succeeded", "failed", "canceled"]


def image_bytes(image: str | Path | bytes) -> bytes:
    """An image given as a path or as its bytes."""
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def remove_background_body(
    *,
    image: str | Path | bytes,
    model: str | None,
    output_format: Literal["png", "webp"] | None,
    response_format: ResponseFormat,
    metadata: dict[str, MetadataValue] | None,
    run_async: bool,
) -> dict[str, Any]:
    """The JSON of `POST /v1/inference/images/remove-background`, the picture in base64."""
    body: dict[str, Any] = {
        "image": base64.b64encode(image_bytes(image)).decode(),
        "response_format": response_format,
        "async": run_async,
    }
    if model is not None:
        body["model"] = model
    if output_format is not None:
        body["output_format"] = output_format
    if metadata is not None:
        body["metadata"] = metadata
    return body


def edit_body(
    *,
    model: str,
    prompt: str,
    image: str | Path | bytes,
    mask: str | Path | bytes | None,
    response_format: ResponseFormat,
    metadata: dict[str, MetadataValue] | None,
    options: dict[str, Any],
    run_async: bool,
) -> dict[str, Any]:
    """The JSON of `POST /v1/inference/images/edit`: the image (and mask) in base64, model
    options at the top level."""
    body: dict[str, Any] = {**options, "model": model, "prompt": prompt}
    body["input_image"] = base64.b64encode(image_bytes(image)).decode()
    if mask is not None:
        body["mask_image"] = base64.b64encode(image_bytes(mask)).decode()
    body["response_format"] = response_format
    if metadata is not None:
        body["metadata"] = metadata
    body["async"] = run_async
    return body


def jobs_params(status: JobStatusFilter | None, limit: int) -> dict[str, str]:
    params = {"limit": str(limit)}
    if status is not None:
        params["status"] = status
    return params


def job_path(job_id: str, action: str = "") -> str:
    path = f"/v1/jobs/{quote(job_id, safe='')}"
    return f"{path}/{action}" if action else path


def model_path(model_id: str) -> str:
    return f"/v1/models/{quote(model_id, safe='/')}"


def file_path(file_id: str, action: str = "") -> str:
    path = f"/v1/files/{quote(file_id, safe='')}"
    return f"{path}/{action}" if action else path


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
