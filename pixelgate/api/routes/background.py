"""`POST /v1/inference/images/remove-background`: JSON with base64 or a file id, or
multipart/form-data with the file `image`. Sync or async like generate."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from pixelgate.api.background_protocol import RemoveBackgroundRequest
from pixelgate.api.deps import BaseUrl, CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import Envelope, ErrorEnvelope, GenerateResult, JobPublic
from pixelgate.api.submission import SubmitHeadersDep, submit_and_respond
from pixelgate.errors import ValidationError

router = APIRouter(prefix="/v1/inference/images", tags=["images"])

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
TEXT_FIELDS = {"model", "image", "input_image", "image_file_id", "input_image_file_id"}
"""Multipart fields kept as text; the others are read as JSON when they are JSON."""

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 413, 422, 502, 503, 504)
}

_SCHEMA = RemoveBackgroundRequest.model_json_schema(by_alias=True)
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        **{k: v for k, v in _SCHEMA["properties"].items() if k != "image"},
                    },
                }
            },
        },
    }
}


async def read_request(request: Request) -> tuple[RemoveBackgroundRequest, bytes | None]:
    """The body from JSON or a form (multipart with the file `image`, or url-encoded with base64
    or a file id); an empty body is `{}`, so a request without a picture is answered
    MUST_PROVIDE_FILE."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(FORM_TYPES):
            fields: dict[str, Any] = {}
            image_file = None
            async with request.form() as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        if name != "image":
                            raise ValidationError(
                                f"Unknown file field {name!r}; send the picture as image",
                                param=name,
                            )
                        image_file = await value.read()
                    else:
                        fields[name] = value if name in TEXT_FIELDS else _form_value(value)
            return RemoveBackgroundRequest.model_validate(fields), image_file
        raw = await request.body()
        if not raw.strip():
            return RemoveBackgroundRequest(), None
        try:
            document = json.loads(raw)
        except ValueError:
            raise ValidationError(
                "The request body is not valid JSON (or send a multipart/form-data form)"
            ) from None
        return RemoveBackgroundRequest.model_validate(document), None
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        raise ValidationError(f"Invalid {param}: {error['msg']}", param=param) from None


def _form_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@router.post(
    "/remove-background",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, **ERRORS},
    openapi_extra=OPENAPI_BODY,
)
async def remove_background(
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    headers: SubmitHeadersDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Cut the subject out of a picture: a transparent PNG, stored and linked like any result.
    Waits for it, or answers 202 with the job when asked to (`"async": true` or
    `Prefer: respond-async`)."""
    body, image_file = await read_request(request)
    command, respond_async = headers.apply(
        body.to_command(image_file=image_file), async_in_body=body.async_
    )
    return await submit_and_respond(
        command,
        respond_async=respond_async,
        request=request,
        principal=principal,
        runtime=runtime,
        base_url=base_url,
    )
