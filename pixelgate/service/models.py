"""The catalog as one caller sees it: the models its tenant may use, and whether each can run
here now. Every surface that lists or shows models (the native API, the OpenAI-compatible one,
the web page through the native API) asks here, so they agree."""

from __future__ import annotations

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.db.tables import Tenant
from pixelgate.providers import ProviderRegistry
from pixelgate.service.access import Principal
from pixelgate.service.tenants import TenantService


class ModelDirectory:
    def __init__(
        self, catalog: Catalog, tenants: TenantService, providers: ProviderRegistry
    ) -> None:
        self._catalog = catalog
        self._tenants = tenants
        self._providers = providers

    def visible_to(
        self, principal: Principal, *, modality: str | None = None, runnable_only: bool = False
    ) -> list[ModelSpec]:
        """The models the caller's tenant may use, in catalog order; `runnable_only` leaves out
        those that cannot run here now for it (no key, its own or the operator's; no
        weights)."""
        principal.require("read")
        tenant = self._tenants.get(principal.tenant_id)
        return [
            spec
            for spec in self._catalog
            if modality in (None, spec.modality)
            and self._tenants.may_use(tenant, spec)
            and not (runnable_only and self._reason(spec, tenant) is not None)
        ]

    def find(self, principal: Principal, model_id: str) -> ModelSpec:
        """One model by id or alias; `ModelAccessDenied` when the tenant may not use it."""
        principal.require("read")
        spec = self._catalog.resolve(model_id)
        self._tenants.check_model(self._tenants.get(principal.tenant_id), spec)
        return spec

    def unavailable_reason(self, principal: Principal, spec: ModelSpec) -> str | None:
        """Why the model cannot run here now for the caller's tenant, or None when it can: a
        tenant's own key for a provider makes its models available to that tenant alone."""
        return self._reason(spec, self._tenants.current(principal.tenant_id))

    def _reason(self, spec: ModelSpec, tenant: Tenant) -> str | None:
        plan = self._tenants.keys.plan(tenant, spec)
        if plan.refusal is not None:
            return plan.refusal
        return self._providers.unavailable_reason(spec, own_key=plan.own_key)
