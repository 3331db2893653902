"""The catalog, as the caller may use it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from pixelgate.api import views
from pixelgate.api.deps import CurrentPrincipal, RuntimeDep
from pixelgate.api.protocol import Envelope, ModelPublic

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=Envelope[list[ModelPublic]])  # only what the caller may use
def list_models(
    principal: CurrentPrincipal, runtime: RuntimeDep, modality: Literal["image"] | None = None
) -> Envelope[list[ModelPublic]]:
    principal.require("read")
    tenant = runtime.tenants.get(principal.tenant_id)
    specs = [
        spec
        for spec in runtime.catalog
        if modality in (None, spec.modality) and runtime.tenants.may_use(tenant, spec)
    ]
    return Envelope(data=[views.model_public(runtime, spec) for spec in specs])


@router.get("/{model_id:path}", response_model=Envelope[ModelPublic])
def get_model(
    model_id: str, principal: CurrentPrincipal, runtime: RuntimeDep
) -> Envelope[ModelPublic]:
    principal.require("read")
    spec = runtime.catalog.resolve(model_id)
    runtime.tenants.check_model(runtime.tenants.get(principal.tenant_id), spec)
    return Envelope(data=views.model_public(runtime, spec))
