"""`POST /v1/inference/images/remove-background`: JSON with base64 or a file id, or
multipart/form-data with the file `image`. Sync or async like generate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pixelgate.api.background_protocol import RemoveBackgroundRequest
from pixelgate.api.body import BodyRules
from pixelgate.api.protocol import Envelope, ErrorEnvelope, GenerateResult, JobPublic
from pixelgate.api.single_image_protocol import IMAGE_FIELDS, single_image_openapi
from pixelgate.api.submission import SubmissionDep
from pixelgate.catalog.options import name_aliases

router = APIRouter(prefix="/v1/inference/images", tags=["images"])

TEXT_FIELDS = ("model", *IMAGE_FIELDS)
RULES = BodyRules(
    files=("image",),
    text_fields={*TEXT_FIELDS, *name_aliases(TEXT_FIELDS)},
    empty={},
)
"""JSON or a form (multipart with the file `image`, or url-encoded with base64 or a file id);
an empty body is `{}`, so a request without a picture is answered MUST_PROVIDE_FILE."""

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 413, 422, 502, 503, 504)
}

OPENAPI_BODY = single_image_openapi(RemoveBackgroundRequest)


@router.post(
    "/remove-background",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, **ERRORS},
    openapi_extra=OPENAPI_BODY,
)
async def remove_background(
    submission: SubmissionDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Cut the subject out of a picture: a transparent PNG, stored and linked like any result.
    Waits for it, or answers 202 with the job when asked to (`"async": true` or
    `Prefer: respond-async`)."""
    return await submission.respond(RemoveBackgroundRequest, RULES)
