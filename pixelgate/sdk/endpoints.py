"""Endpoint paths and request bodies, shared by the sync and async resources."""

from __future__ import annotations

import base64
import json
import mimetypes
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict
from urllib.parse import quote

from pixelgate.errors import ValidationError
from pixelgate.sdk.transport import Form
from pixelgate.sdk.types import ImagesResponse, MetadataValue

ResponseFormat = Literal["url", "b64_json"]


def generate_body(
    *,
    model: str,
    prompt: str,
    response_format: ResponseFormat,
    metadata: dict[str, MetadataValue] | None,
    options: dict[str, Any],
    run_async: bool,
    fallbacks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The JSON of `POST /v1/inference/images/generate`: model options sit at the top level."""
    body: dict[str, Any] = {**options, "model": model, "prompt": prompt}
    body["response_format"] = response_format
    if metadata is not None:
        body["metadata"] = metadata
    if fallbacks is not None:
        body["fallbacks"] = list(fallbacks)
    body["async"] = run_async
    return body


REMOVE_BACKGROUND_PATH = "/v1/inference/images/remove-background"
UPSCALE_PATH = "/v1/inference/images/upscale"
EDIT_PATH = "/v1/inference/images/edit"
JobStatusFilter = Literal["queued", "running", "succeeded", "failed", "canceled"]


def image_bytes(image: str | Path | bytes) -> bytes:
    """An image given as a path or as its bytes."""
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def remove_background_upload(
    *,
    data: str | Path | bytes,
    filename: str | None,
    content_type: str | None,
    model: str | None,
    output_format: Literal["png", "webp"] | None,
    response_format: ResponseFormat,
    metadata: dict[str, MetadataValue] | None,
    run_async: bool,
) -> Form:
    """The form of `POST /v1/inference/images/remove-background` (multipart): its fields, and
    the picture as the file `image`, named `filename` (a path's own name, else `image`) with
    `content_type` (guessed from the name, else `application/octet-stream`)."""
    name = filename or (Path(data).name if not isinstance(data, bytes) else "image")
    kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    fields = {"response_format": response_format, "async": json.dumps(run_async)}
    if model is not None:
        fields["model"] = model
    if output_format is not None:
        fields["output_format"] = output_format
    if metadata is not None:
        fields["metadata"] = json.dumps(metadata)
    return Form(fields, {"image": (name, image_bytes(data), kind)})


def only_url(result: ImagesResponse) -> str:
    """The link of a result's one image (`images.generate_url`)."""
    if len(result.data) != 1:
        raise ValidationError(
            f"generate_url returns one link, and job {result.job_id} made {len(result.data)} "
            "images: ask for one, or use images.generate",
            param="n",
        )
    url = result.data[0].url
    if url is None:
        raise ValidationError(
            "generate_url returns a link: leave response_format unset", param="response_format"
        )
    return url


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
    fallbacks: Sequence[str] | None = None,
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
    if fallbacks is not None:
        body["fallbacks"] = list(fallbacks)
    body["async"] = run_async
    return body


def upscale_body(
    *,
    image: str | Path | bytes | None,
    file_id: str | None,
    factor: int | None,
    model: str | None,
    prompt: str | None,
    response_format: ResponseFormat,
    metadata: dict[str, MetadataValue] | None,
    options: dict[str, Any],
    run_async: bool,
) -> dict[str, Any]:
    """The JSON of `POST /v1/inference/images/upscale`: the image in base64 (or a stored
    result's id), the server's defaults for what is None, model options at the top level."""
    body: dict[str, Any] = dict(options)
    sent = {"model": model, "factor": factor, "prompt": prompt, "image_file_id": file_id}
    body.update({name: value for name, value in sent.items() if value is not None})
    if image is not None:
        body["image"] = base64.b64encode(image_bytes(image)).decode()
    body["response_format"] = response_format
    if metadata is not None:
        body["metadata"] = metadata
    body["async"] = run_async
    return body


Moment = datetime | int | float | str
"""A time for a filter: a datetime (naive is UTC), unix seconds, or ISO 8601 text."""


class ListFilters(TypedDict, total=False):
    """What the job and file lists filter by; every one is optional (None is left out).

    - `model`: a model id or alias;
    - `created_after` (inclusive), `created_before` (exclusive): a `Moment`;
    - `q`: text in the prompt, any case;
    - `limit`: items per page, 1 to 100 (default 20)."""

    model: str | None
    created_after: Moment | None
    created_before: Moment | None
    q: str | None
    limit: int


class JobFilters(ListFilters, total=False):
    """`ListFilters`, and `status`: only jobs in this state."""

    status: JobStatusFilter | None


class FileFilters(ListFilters, total=False):
    """`ListFilters`, and `job_id`: only this job's files."""

    job_id: str | None


def list_params(
    filters: Mapping[str, Any], *, after: str | None = None, before: str | None = None
) -> dict[str, str]:
    """The query of a page of a list: its cursor and filters, as text."""
    given: dict[str, Any] = {**filters, "after": after, "before": before}
    return {name: _param_text(value) for name, value in given.items() if value is not None}


def _param_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def job_path(job_id: str, action: str = "") -> str:
    path = f"/v1/jobs/{quote(job_id, safe='')}"
    return f"{path}/{action}" if action else path


BATCH_PATH = "/v1/inference/images/batch"
BATCHES_PATH = "/v1/batches"


def batch_path(batch_id: str, action: str = "") -> str:
    path = f"{BATCHES_PATH}/{quote(batch_id, safe='')}"
    return f"{path}/{action}" if action else path


def batch_body(
    requests: Iterable[Mapping[str, Any]], metadata: Mapping[str, MetadataValue] | None
) -> dict[str, Any]:
    """The JSON of `POST /v1/inference/images/batch`: each request a generate body."""
    body: dict[str, Any] = {"requests": [dict(request) for request in requests]}
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


def model_path(model_id: str) -> str:
    return f"/v1/models/{quote(model_id, safe='/')}"


def file_path(file_id: str, action: str = "") -> str:
    path = f"/v1/files/{quote(file_id, safe='')}"
    return f"{path}/{action}" if action else path


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
