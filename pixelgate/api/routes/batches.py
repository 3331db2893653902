"""Batches: many generate requests in one call, each run as an ordinary job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pixelgate.api import views
from pixelgate.api.batch_protocol import BatchCreate, BatchPublic
from pixelgate.api.body import BodyRules, read_body, validate
from pixelgate.api.deps import (
    BaseUrl,
    CurrentPrincipal,
    GeneratePrincipal,
    ReadPrincipal,
    RuntimeDep,
)
from pixelgate.api.protocol import Envelope, ErrorEnvelope, GenerateRequest, ListEnvelope
from pixelgate.api.submission import with_link_base
from pixelgate.service.history import Filters

router = APIRouter(tags=["batches"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope} for status in (400, 401, 403, 404, 422)
}

_SCHEMA = BatchCreate.model_json_schema(by_alias=True)
BODY: dict[str, Any] = {
    **{key: value for key, value in _SCHEMA.items() if key != "$defs"},
    "properties": {
        **_SCHEMA["properties"],
        # each item inline: the document's components do not hold the model's own `$defs`
        "requests": {
            **_SCHEMA["properties"]["requests"],
            "items": GenerateRequest.model_json_schema(by_alias=True),
        },
    },
}


@router.post(
    "/v1/inference/images/batch",
    status_code=202,
    response_model=Envelope[BatchPublic],
    responses=ERRORS,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BODY}}}
    },
)
async def create_batch(
    request: Request, principal: CurrentPrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> JSONResponse:
    """Up to 100 generate requests, answered at once (202) with the batch. Every request is
    checked first: one that is invalid is a 400 naming it (`requests.3.width`) and nothing is
    queued. The items then run as the caller's jobs under its rate, concurrency and budget
    limits: one held back by a limit waits for it; one refused (the budget spent) fails with
    that error while the rest go on."""
    body = validate(BatchCreate, (await read_body(request, BodyRules())).fields)
    commands = [with_link_base(item.to_command(), base_url) for item in body.requests]
    view = await run_in_threadpool(
        runtime.batches.create, principal, commands, metadata=body.metadata
    )
    public = await run_in_threadpool(views.batch_public, runtime, view, base_url)
    return JSONResponse(
        Envelope(data=public).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/batches/{view.batch.id}"},
    )


async def batch_page(
    after: Annotated[
        str | None, Query(description="A batch's id: the batches older than it.")
    ] = None,
    before: Annotated[
        str | None, Query(description="A batch's id: the batches newer than it.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Filters:
    return Filters(limit=limit, after=after, before=before)


@router.get("/v1/batches", response_model=ListEnvelope[BatchPublic])
def list_batches(
    principal: ReadPrincipal,
    runtime: RuntimeDep,
    base_url: BaseUrl,
    filters: Annotated[Filters, Depends(batch_page)],
) -> ListEnvelope[BatchPublic]:
    """The caller's batches, newest first, a page at a time (`after`/`before` an id, `limit`),
    each with its counts by status (its items: `GET /v1/batches/{id}`)."""
    page = runtime.history.batches(principal.tenant_id, filters)
    items = [
        views.batch_public(runtime, view, base_url)
        for view in runtime.batches.summaries(page.items)
    ]
    return ListEnvelope(**views.page_public(items), has_more=page.has_more)


@router.get("/v1/batches/{batch_id}", response_model=Envelope[BatchPublic], responses=ERRORS)
def get_batch(
    batch_id: str, principal: ReadPrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> Envelope[BatchPublic]:
    """The batch: its counts by status, and each item's job, status and images."""
    view = runtime.batches.get(principal, batch_id)
    return Envelope(data=views.batch_public(runtime, view, base_url))


@router.post(
    "/v1/batches/{batch_id}/cancel", response_model=Envelope[BatchPublic], responses=ERRORS
)
def cancel_batch(
    batch_id: str, principal: GeneratePrincipal, runtime: RuntimeDep, base_url: BaseUrl
) -> Envelope[BatchPublic]:
    """Cancel the items not yet submitted and those queued; running items finish."""
    view = runtime.batches.cancel(principal, batch_id)
    return Envelope(data=views.batch_public(runtime, view, base_url))
