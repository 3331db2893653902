"""Request dependencies, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal
from pixelgate.service.history import Filters, parse_instant

# Dependencies are `async def` where they need no I/O: FastAPI runs a plain `def` one in a
# worker thread, and the hop costs more than the work.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def current_principal(
    runtime: RuntimeDep,
    # in the OpenAPI document as the bearer scheme (api/openapi.py), not as a parameter
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The caller, by their bearer key."""
    return await authenticate(runtime, authorization)


async def authenticate(runtime: Runtime, authorization: str | None) -> Principal:
    """The caller of any surface (routes, `/mcp`) by its `Authorization` header; the database
    is read (in a worker thread) only for a key not seen lately."""
    principal = runtime.access.recently_authenticated(authorization)
    if principal is not None:
        return principal
    return await run_in_threadpool(runtime.access.authenticate, authorization)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def admin_principal(principal: CurrentPrincipal) -> Principal:
    """The caller, who must hold an admin scope (global or its tenant's); checked before the
    body is read. Each admin route then checks the reach it needs."""
    if not principal.is_admin:
        principal.require("admin")
    return principal


async def global_admin_principal(principal: CurrentPrincipal) -> Principal:
    """The caller, who must hold the operators' global `admin` scope."""
    principal.require("admin")
    return principal


async def read_principal(principal: CurrentPrincipal) -> Principal:
    """The caller, who must hold the `read` scope."""
    principal.require("read")
    return principal


async def generate_principal(principal: CurrentPrincipal) -> Principal:
    """The caller, who must hold the `generate` scope (to make, cancel or delete)."""
    principal.require("generate")
    return principal


ReadPrincipal = Annotated[Principal, Depends(read_principal)]
GeneratePrincipal = Annotated[Principal, Depends(generate_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
GlobalAdmin = Annotated[Principal, Depends(global_admin_principal)]


async def get_base_url(request: Request, runtime: RuntimeDep) -> str:
    return base_url_of(request, runtime)


def base_url_of(request: Request, runtime: Runtime) -> str:
    """Where links point: the configured public URL, else the URL this request came to."""
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


BaseUrl = Annotated[str, Depends(get_base_url)]


async def page_filters(
    after: Annotated[
        str | None, Query(description="An item's id: the items older than it (the next page).")
    ] = None,
    before: Annotated[
        str | None, Query(description="An item's id: the items newer than it (the page before).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    model: Annotated[str | None, Query(description="Only this model's (an id or alias).")] = None,
    created_after: Annotated[
        str | None,
        Query(description="Created at or after: ISO 8601 (UTC without an offset) or unix seconds."),
    ] = None,
    created_before: Annotated[
        str | None, Query(description="Created before: ISO 8601 or unix seconds.")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=500, description="Text in the prompt, any case.")
    ] = None,
) -> Filters:
    """The paging and filters that the job list and the file list share."""
    return Filters(
        limit=limit,
        after=after,
        before=before,
        model=model,
        created_after=parse_instant(created_after, param="created_after"),
        created_before=parse_instant(created_before, param="created_before"),
        q=q,
    )


PageFilters = Annotated[Filters, Depends(page_filters)]
