"""Image inference routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pixelgate.api.body import BodyRules
from pixelgate.api.protocol import (
    EditRequest,
    Envelope,
    ErrorEnvelope,
    GenerateRequest,
    GenerateResult,
    JobPublic,
)
from pixelgate.api.submission import SubmissionDep
from pixelgate.catalog.options import name_aliases

GENERATE_RULES = BodyRules()
"""Generate: a JSON body (or a form of the same fields), no files."""

router = APIRouter(prefix="/v1/inference/images", tags=["images"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 422, 502, 503, 504)
}


GENERATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": GenerateRequest.model_json_schema(by_alias=True)}
        },
    }
}


@router.post(
    "/generate",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, **ERRORS},
    openapi_extra=GENERATE_BODY,
)
async def generate(
    submission: SubmissionDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Text-to-image. Waits for the images, or answers 202 with the job when asked to
    (`"async": true` or `Prefer: respond-async`). `Idempotency-Key` replays the first job;
    `"cache": false` or `Cache-Control: no-cache` skips the result cache."""
    return await submission.respond(GenerateRequest, GENERATE_RULES)


EDIT_TEXT_FIELDS = ("model", "prompt", "negative_prompt", "response_format")
EDIT_RULES = BodyRules(
    files=("image", "mask"),
    text_fields={*EDIT_TEXT_FIELDS, *name_aliases(EDIT_TEXT_FIELDS)},
    lists=("fallbacks",),
)
"""Multipart edits: the files `image` and `mask`; the text fields (under any of their names)
stay text, `fallbacks` may be repeated, the others are read as JSON when they are JSON (`4`,
`true`)."""

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
                        "fallbacks": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": True,
                }
            },
        },
    }
}


@router.post(
    "/edit",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, 413: {"model": ErrorEnvelope}, **ERRORS},
    openapi_extra=EDIT_BODY,
)
async def edit(
    submission: SubmissionDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Image-to-image or inpainting, from JSON (base64 or stored file ids) or multipart.
    Waits for the images, or answers 202 with the job when asked to."""
    return await submission.respond(EditRequest, EDIT_RULES)
