"""Request dependencies, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from pixelgate.runtime import Runtime
from pixelgate.service.access import Principal


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_principal(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return runtime.access.authenticate(authorization)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def admin_principal(principal: CurrentPrincipal) -> Principal:
    """The caller, who must hold the admin scope; checked before the body is read."""
    principal.require("admin")
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]


def get_base_url(request: Request, runtime: RuntimeDep) -> str:
    """Where links point: the configured public URL, else the URL this request came to."""
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


BaseUrl = Annotated[str, Depends(get_base_url)]
