"""`POST /v1/inference/images/upscale`: JSON with base64 or a file id, or multipart/form-data
with the file `image`. Sync or async like generate."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pixelgate.api.body import BodyRules
from pixelgate.api.protocol import Envelope, GenerateResult, JobPublic
from pixelgate.api.routes.background import ERRORS
from pixelgate.api.single_image_protocol import IMAGE_FIELDS, single_image_openapi
from pixelgate.api.submission import SubmissionDep
from pixelgate.api.upscale_protocol import UpscaleRequest
from pixelgate.catalog.options import name_aliases

router = APIRouter(prefix="/v1/inference/images", tags=["images"])

TEXT_FIELDS = ("model", "prompt", "negative_prompt", *IMAGE_FIELDS)
RULES = BodyRules(
    files=("image",),
    text_fields={*TEXT_FIELDS, *name_aliases(TEXT_FIELDS)},
    empty={},
)
"""JSON or a form (multipart with the file `image`); the text fields stay text, the others
(`factor`, `num_steps`) are read as JSON when they are JSON. An empty body is `{}`, so a request
without a picture is answered MUST_PROVIDE_FILE."""


@router.post(
    "/upscale",
    response_model=Envelope[GenerateResult],
    responses={202: {"model": Envelope[JobPublic]}, **ERRORS},
    openapi_extra=single_image_openapi(UpscaleRequest),
)
async def upscale(
    submission: SubmissionDep,
) -> Envelope[GenerateResult] | JSONResponse:
    """Enlarge a picture 2 or 4 times (`factor`), stored and linked like any result. Waits for
    it, or answers 202 with the job when asked to (`"async": true` or `Prefer: respond-async`);
    a local diffusion upscaler reports its steps over `GET /v1/jobs/{id}/events`."""
    return await submission.respond(UpscaleRequest, RULES)
