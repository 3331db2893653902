"""What every inference route of the native API does with its request: read and validate the
body, apply the request headers that shape a submission, submit the command, then answer 202
with the job or wait for its images (`Submission.respond`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pixelgate.api import views
from pixelgate.api.body import BodyRules, read_body, validate
from pixelgate.api.deps import BaseUrl, CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import Envelope, GenerateResult, JobRequest
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


@dataclass(frozen=True)
class Submission:
    """What an inference route turns into a job: its request, caller and headers."""

    request: Request
    principal: Principal
    runtime: Runtime
    base_url: str
    headers: SubmitHeaders

    async def respond(
        self, model: type[JobRequest], rules: BodyRules
    ) -> Envelope[GenerateResult] | JSONResponse:
        """The one path of a request that makes a job: read the body (`rules`), validate it as
        `model`, apply the headers, submit; then 202 with the job, or wait and answer with its
        images."""
        sent = await read_body(self.request, rules)
        body = validate(model, sent.fields)
        files = {name: data for name in rules.files if (data := sent.file(name)) is not None}
        command, respond_async = self.headers.apply(
            body.to_command(files), async_in_body=body.async_
        )
        command = with_link_base(command, self.base_url)
        runtime, base_url = self.runtime, self.base_url
        if not respond_async:
            result = await runtime.jobs.run(
                self.principal,
                command,
                timeout=runtime.settings.sync_timeout_seconds,
                disconnected=self.request.is_disconnected,
                answer=lambda job: views.generate_result(runtime, job, base_url),
            )
            return Envelope(data=result)
        job = await run_in_threadpool(runtime.jobs.submit, self.principal, command)
        public = await run_in_threadpool(views.job_public, runtime, job, base_url)
        return JSONResponse(
            Envelope(data=public).model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/jobs/{job.id}", "Preference-Applied": "respond-async"},
        )


async def submission(
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    headers: SubmitHeadersDep,
) -> Submission:
    return Submission(request, principal, runtime, base_url, headers)


SubmissionDep = Annotated[Submission, Depends(submission)]
