"""Job routes: status, the event stream, cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from pixelgate.api import views
from pixelgate.api.deps import BaseUrl, GeneratePrincipal, PageFilters, ReadPrincipal, RuntimeDep
from pixelgate.api.protocol import Deleted, Envelope, JobPublic, ListEnvelope
from pixelgate.engine import JobEventMessage
from pixelgate.errors import ValidationError
from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal
from pixelgate.service.job_store import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("", response_model=ListEnvelope[JobPublic])
def list_jobs(
    principal: ReadPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    filters: PageFilters,
    status: JobStatus | None = None,
) -> ListEnvelope[JobPublic]:
    """The caller's jobs, newest first, a page at a time (`after`/`before` an id, `limit`),
    of one `status`, `model` and creation range (`created_after` inclusive, `created_before`
    exclusive: ISO 8601 or unix seconds), whose prompt contains `q` (any case)."""
    page = runtime.history.jobs(principal.tenant_id, replace(filters, status=status))
    items = [views.job_public(runtime, job, base_url) for job in page.items]
    return ListEnvelope(**views.page_public(items), has_more=page.has_more)


@router.get("/{job_id}", response_model=Envelope[JobPublic])
def get_job(
    job_id: str, principal: ReadPrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> Envelope[JobPublic]:
    job = runtime.jobs.get(principal, job_id)
    return Envelope(data=views.job_public(runtime, job, base_url))


@router.delete("/{job_id}", response_model=Envelope[Deleted])
def delete_job(job_id: str, principal: GeneratePrincipal, runtime: RuntimeDep) -> Envelope[Deleted]:
    """Delete a finished job (succeeded, failed or canceled) with its files and events; its
    links stop working. A queued or running job is `409 CONFLICT`: cancel it first. Needs the
    `generate` scope, as every change to a tenant's jobs does; its billing records stay."""
    runtime.history.delete_job(principal.tenant_id, job_id)
    return Envelope(data=Deleted(id=job_id, object="job"))


@router.post("/{job_id}/cancel", response_model=Envelope[JobPublic])
def cancel_job(
    job_id: str, principal: GeneratePrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> Envelope[JobPublic]:
    """Cancel a queued job now, or a running one at its next step (`cancel_requested`)."""
    job = runtime.jobs.cancel(principal, job_id)
    return Envelope(data=views.job_public(runtime, job, base_url))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    job_id: str,
    principal: ReadPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-Sent Events: `queued`, `running`, `progress` (step, total, and from a local
    model now and then `preview`, a small JPEG data URI of the image so far), then one of
    `succeeded` (with the job and its images), `failed` or `canceled`, each with the job and
    what it cost (`cost`). Resumable with `Last-Event-ID`."""
    after_id = None
    if last_event_id:
        if not last_event_id.isdigit():
            raise ValidationError("Last-Event-ID must be an event id", param="Last-Event-ID")
        after_id = int(last_event_id)
    events = runtime.jobs.follow(principal, job_id, after_id=after_id)
    first = await anext(events)  # raises NotFound before the stream starts
    return StreamingResponse(
        _sse(runtime, principal, job_id, base_url, first, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    runtime: Runtime,
    principal: Principal,
    job_id: str,
    base_url: str,
    first: JobEventMessage | None,
    rest: AsyncIterator[JobEventMessage | None],
) -> AsyncIterator[str]:
    async def all_events() -> AsyncIterator[JobEventMessage | None]:
        yield first
        async for event in rest:
            yield event

    async for event in all_events():
        if event is None:
            yield ": keep-alive\n\n"
            continue
        data = dict(event.data)
        if event.is_terminal:
            job = await run_in_threadpool(runtime.jobs.get, principal, job_id)
            public = await run_in_threadpool(views.job_public, runtime, job, base_url)
            data["job"] = public.model_dump(mode="json")
            data["cost"] = data["job"]["cost"]
        lines = [f"event: {event.type}", f"data: {json.dumps(data)}"]
        if event.id is not None:
            lines.insert(0, f"id: {event.id}")
        yield "\n".join(lines) + "\n\n"
