"""Image inference routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pixelgate.api import views
from pixelgate.api.deps import BaseUrl, CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import (
    Envelope,
    ErrorEnvelope,
    GenerateRequest,
    GenerateResult,
    JobPublic,
)

router = APIRouter(prefix="/v1/inference/images", tags=["images"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 422, 502, 503, 504)
}


def wants_async(body_flag: bool, prefer: str | None) -> bool:
    preferences = {part.strip().lower() for part in (prefer or "").split(",")}
    return body_flag or "respond-async" in preferences


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
    prefer: Annotated[str | None, Header()] = None,
) -> Envelope[GenerateResult] | JSONResponse:
    """Text-to-image. Waits for the images, or answers 202 with the job when asked to."""
    job = await run_in_threadpool(runtime.jobs.submit, principal, body.to_command())
    if wants_async(body.async_, prefer):
        public = await run_in_threadpool(views.job_public, runtime, job, base_url)
        return JSONResponse(
            Envelope(data=public).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/jobs/{job.id}", "Preference-Applied": "respond-async"},
        )
    job = await runtime.jobs.wait(
        principal,
        job.id,
        timeout=runtime.settings.sync_timeout_seconds,
        disconnected=request.is_disconnected,
    )
    result = await run_in_threadpool(views.generate_result, runtime, job, base_url)
    return Envelope(data=result)
