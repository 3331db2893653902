"""The caller's own spend and counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pixelgate.api.admin_protocol import UsagePublic
from pixelgate.api.deps import ReadPrincipal, RuntimeDep
from pixelgate.api.protocol import Envelope
from pixelgate.api.views import usage_public

router = APIRouter(tags=["usage"])


@router.get("/v1/usage", response_model=Envelope[UsagePublic])
def usage(
    principal: ReadPrincipal,
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Envelope[UsagePublic]:
    """What the caller's tenant spent and made, by model and by day, and its budgets."""
    tenant = runtime.tenants.get(principal.tenant_id)
    return Envelope(data=usage_public(runtime.billing.usage(tenant, days=days)))
