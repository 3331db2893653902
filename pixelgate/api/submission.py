"""What every inference route does with a command: submit it, then answer 202 with the job or
wait for its images. Also the request headers that shape a submission."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pixelgate.api import views
from pixelgate.api.protocol import Envelope, GenerateResult
from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal
from pixelgate.service.jobs import ImageCommand


@dataclass(frozen=True)
class SubmitHeaders:
    respond_async: bool
    idempotency_key: str | None
    no_cache: bool

    def apply(self, command: ImageCommand, *, async_in_body: bool) -> tuple[ImageCommand, bool]:
        """The command with the headers' wishes, and whether to answer at once."""
        command = dataclasses.replace(
            command,
            idempotency_key=self.idempotency_key,
            use_cache=command.use_cache and not self.no_cache,
        )
        return command, async_in_body or self.respond_async


async def submit_headers(
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
    cache_control: Annotated[str | None, Header()] = None,
) -> SubmitHeaders:
    preferences = {part.strip().lower() for part in (prefer or "").split(",")}
    directives = {part.strip().lower() for part in (cache_control or "").split(",")}
    return SubmitHeaders(
        respond_async="respond-async" in preferences,
        idempotency_key=idempotency_key,
        no_cache=bool(directives & {"no-cache", "no-store"}),
    )


SubmitHeadersDep = Annotated[SubmitHeaders, Depends(submit_headers)]


def with_link_base(command: ImageCommand, base_url: str) -> ImageCommand:
    """The command, its webhook's deliveries to carry links to `base_url`."""
    if command.webhook is None:
        return command
    return dataclasses.replace(
        command, webhook=dataclasses.replace(command.webhook, base_url=base_url)
    )


async def submit_and_respond(
    command: ImageCommand,
    *,
    respond_async: bool,
    request: Request,
    principal: Principal,
    runtime: Runtime,
    base_url: str,
) -> Envelope[GenerateResult] | JSONResponse:
    """Submit; then 202 with the job, or wait and answer with its images."""
    command = with_link_base(command, base_url)
    if not respond_async:
        result = await runtime.jobs.run(
            principal,
            command,
            timeout=runtime.settings.sync_timeout_seconds,
            disconnected=request.is_disconnected,
            answer=lambda job: views.generate_result(runtime, job, base_url),
        )
        return Envelope(data=result)
    job = await run_in_threadpool(runtime.jobs.submit, principal, command)
    public = await run_in_threadpool(views.job_public, runtime, job, base_url)
    return JSONResponse(
        Envelope(data=public).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}", "Preference-Applied": "respond-async"},
    )
