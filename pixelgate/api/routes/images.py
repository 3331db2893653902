"""Image inference routes."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from pixelgate.api.deps import BaseUrl, CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import (
    EditRequest,
    Envelope,
    ErrorEnvelope,
    GenerateRequest,
    GenerateResult,
    JobPublic,
)
from pixelgate.api.submission import SubmitHeadersDep, submit_and_respond
from pixelgate.errors import ValidationError

router = APIRouter(prefix="/v1/inference/images", tags=["images"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 422, 502, 503, 504)
}


@router.post(
    "/generate",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, **ERRORS},
)
async def generate(
    body: GenerateRequest,
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    headers: SubmitHeadersDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Text-to-image. Waits for the images, or answers 202 with the job when asked to
    (`"async": true` or `Prefer: respond-async`). `Idempotency-Key` replays the first job;
    `"cache": false` or `Cache-Control: no-cache` skips the result cache."""
    command, respond_async = headers.apply(body.to_command(), async_in_body=body.async_)
    return await submit_and_respond(
        command,
        respond_async=respond_async,
        request=request,
        principal=principal,
        runtime=runtime,
        base_url=base_url,
    )


TEXT_FIELDS = frozenset({"model", "prompt", "negative_prompt", "response_format"})
"""Multipart fields kept as text; the others are read as JSON when they are JSON (`4`, `true`)."""

EDIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": EditRequest.model_json_schema(by_alias=True)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "mask": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "prompt": {"type": "string"},
                    },
                    "additionalProperties": True,
                }
            },
        },
    }
}


async def read_edit_request(request: Request) -> tuple[EditRequest, bytes | None, bytes | None]:
    """The edit body, from JSON or from multipart/form-data (files `image` and `mask`)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            fields: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            async with request.form() as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        files[name] = await value.read()
                    elif name in TEXT_FIELDS:
                        fields[name] = value
                    else:
                        fields[name] = _form_value(value)
            unknown = set(files) - {"image", "mask"}
            if unknown:
                name = sorted(unknown)[0]
                raise ValidationError(
                    f"Unknown file field {name!r}; send image and mask", param=name
                )
            body = EditRequest.model_validate(fields)
            return body, files.get("image"), files.get("mask")
        try:
            raw = await request.json()
        except ValueError:
            raise ValidationError("The request body is not valid JSON") from None
        return EditRequest.model_validate(raw), None, None
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        if error["type"] == "missing":
            raise ValidationError(f"Missing required field {param!r}", param=param) from None
        raise ValidationError(f"Invalid {param}: {error['msg']}", param=param) from None


def _form_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@router.post(
    "/edit",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, 413: {"model": ErrorEnvelope}, **ERRORS},
    openapi_extra=EDIT_BODY,
)
async def edit(
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    headers: SubmitHeadersDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Image-to-image or inpainting, from JSON (base64 or stored file ids) or multipart.
    Waits for the images, or answers 202 with the job when asked to."""
    body, image_file, mask_file = await read_edit_request(request)
    command = body.to_command(image_file=image_file, mask_file=mask_file)
    command, respond_async = headers.apply(command, async_in_body=body.async_)
    return await submit_and_respond(
        command,
        respond_async=respond_async,
        request=request,
        principal=principal,
        runtime=runtime,
        base_url=base_url,
    )
