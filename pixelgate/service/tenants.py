"""Tenants: who they are and which models they may use."""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select

from pixelgate.catalog import ModelSpec
from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import Tenant
from pixelgate.errors import Conflict, ModelAccessDenied, NotFound, ValidationError
from pixelgate.service.billing import to_micros
from pixelgate.service.provider_keys import ProviderKeys
from pixelgate.service.recent import ReadLately

_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
LIMIT_NAMES = ("requests_per_minute", "images_per_day", "concurrent_jobs")
UNSET: Any = object()


@dataclass(frozen=True)
class TenantChanges:
    """What an admin may set on a tenant; UNSET leaves a field as it is."""

    name: Any = UNSET
    allow_models: Any = UNSET
    deny_models: Any = UNSET
    prices: Any = UNSET
    budget_total: Any = UNSET
    budget_monthly: Any = UNSET
    limits: Any = UNSET
    cache_policy: Any = UNSET
    safety_threshold: Any = UNSET
    retention_days: Any = UNSET
    provider_keys: Any = UNSET
    """{provider: key (a `SecretStr`) or None to remove it}; None removes every one."""
    own_keys_only: Any = UNSET
    own_keys_billing: Any = UNSET


class TenantService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        keys: ProviderKeys,
        on_retention_change: Callable[[str], object] | None = None,
    ) -> None:
        """`keys`: where its own provider keys are kept. `on_retention_change`: called with a
        tenant's id once a new retention of its is recorded (`FileService.apply_retention`: its
        stored files expire by it)."""
        self._db = db
        self._clock = clock
        self.keys = keys
        self._on_retention_change = on_retention_change
        self._recent: ReadLately[str, Tenant] = ReadLately(clock)
        """Tenants as read lately (see `recent.TRUSTED_FOR`); replaced whole, never changed."""

    def get(self, tenant_id: str) -> Tenant:
        """The tenant as recorded now."""
        with self._db.session() as session:
            tenant = session.get(Tenant, tenant_id)
        if tenant is None:
            self._recent.forget(tenant_id)
            raise NotFound(f"No tenant {tenant_id!r}", param="tenant_id")
        self._recent.remember(tenant_id, tenant)
        return tenant

    def current(self, tenant_id: str) -> Tenant:
        """The tenant as read lately (`recent.TRUSTED_FOR`), for the request path: every request
        needs its tenant (model access, prices, budgets, limits), and reading it each time
        costs more than the rest of accepting a job."""
        return self._recent.get(tenant_id) or self.get(tenant_id)

    def list_tenants(self) -> list[Tenant]:
        with self._db.session() as session:
            return list(session.scalars(select(Tenant).order_by(Tenant.created_at)))

    def create(self, *, tenant_id: str | None, name: str, changes: TenantChanges) -> Tenant:
        tenant_id = tenant_id or "tn_" + secrets.token_hex(6)
        if not _TENANT_ID.fullmatch(tenant_id):
            raise ValidationError(
                f"Invalid tenant id {tenant_id!r}: lowercase letters, digits, '-' and '_'",
                param="id",
            )
        tenant = Tenant(
            id=tenant_id,
            name=name,
            created_at=self._clock.now(),
            cache_policy="free",
            own_keys_only=False,
            own_keys_billing="free",
        )
        _apply(tenant, changes)
        with self._db.session() as session:
            if session.get(Tenant, tenant_id) is not None:
                raise Conflict(f"Tenant {tenant_id!r} already exists", param="id")
            session.add(tenant)
            if changes.provider_keys is not UNSET:
                session.flush()  # the tenant's row before its keys'
                self.keys.apply(session, tenant_id, changes.provider_keys)
        self._recent.forget(tenant_id)
        self.keys.forget(tenant_id)
        return tenant

    def update(self, tenant_id: str, changes: TenantChanges) -> Tenant:
        with self._db.session() as session:
            tenant = session.get(Tenant, tenant_id)
            if tenant is None:
                raise NotFound(f"No tenant {tenant_id!r}", param="tenant_id")
            refuse_erased(tenant)
            retention = tenant.retention_days
            _apply(tenant, changes)
            if changes.provider_keys is not UNSET:
                self.keys.apply(session, tenant_id, changes.provider_keys)
        self._recent.forget(tenant_id)
        self.keys.forget(tenant_id)
        if tenant.retention_days != retention and self._on_retention_change is not None:
            self._on_retention_change(tenant_id)
        return tenant

    def forget(self, tenant_id: str) -> None:
        """The tenant changed in another unit of work: read it (and its keys) again next time."""
        self._recent.forget(tenant_id)
        self.keys.forget(tenant_id)

    # -- model access ---------------------------------------------------------------------

    @staticmethod
    def may_use(tenant: Tenant, spec: ModelSpec) -> bool:
        names = (spec.id, *spec.aliases)

        def matches(patterns: list[Any] | None) -> bool:
            return any(fnmatch.fnmatchcase(n, str(p)) for p in patterns or () for n in names)

        if matches(tenant.deny_models):
            return False
        return tenant.allow_models is None or matches(tenant.allow_models)

    def check_model(self, tenant: Tenant, spec: ModelSpec) -> None:
        if not self.may_use(tenant, spec):
            raise ModelAccessDenied(
                f"Model {spec.id!r} is not allowed for this API key's tenant", param="model"
            )


def refuse_erased(tenant: Tenant) -> None:
    """An erased tenant (`service.erasure`) is a tombstone: nothing of it changes again."""
    if tenant.erased_at is not None:
        raise Conflict(f"Tenant {tenant.id!r} was erased", param="tenant_id")


def _apply(tenant: Tenant, changes: TenantChanges) -> None:
    """Check and copy the given changes; money arrives as decimal strings."""
    if changes.name is not UNSET:
        tenant.name = str(changes.name)
    for name in ("allow_models", "deny_models"):
        value = getattr(changes, name)
        if value is not UNSET:
            if value is not None and not all(isinstance(p, str) and p for p in value):
                raise ValidationError(
                    f"Invalid {name}: a list of model ids or patterns", param=name
                )
            setattr(tenant, name, None if value is None else list(value))
    if changes.prices is not UNSET:
        tenant.prices = _prices(changes.prices)
    for name in ("budget_total", "budget_monthly"):
        value = getattr(changes, name)
        if value is not UNSET:
            setattr(tenant, name, None if value is None else to_micros(str(value), param=name))
    if changes.limits is not UNSET:
        tenant.limits = check_limits(changes.limits, param="limits")
    if changes.cache_policy is not UNSET:
        tenant.cache_policy = _cache_policy(changes.cache_policy)
    if changes.safety_threshold is not UNSET:
        value = changes.safety_threshold
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise ValidationError(
                "Invalid safety_threshold: a number from 0 to 1", param="safety_threshold"
            )
        tenant.safety_threshold = None if value is None else float(value)
    if changes.retention_days is not UNSET:
        tenant.retention_days = _retention_days(changes.retention_days)
    if changes.own_keys_only is not UNSET:
        if not isinstance(changes.own_keys_only, bool):
            raise ValidationError("Invalid own_keys_only: true or false", param="own_keys_only")
        tenant.own_keys_only = changes.own_keys_only
    if changes.own_keys_billing is not UNSET:
        if changes.own_keys_billing not in ("free", "charge"):
            raise ValidationError(
                "Invalid own_keys_billing: 'free' or 'charge'", param="own_keys_billing"
            )
        tenant.own_keys_billing = changes.own_keys_billing


def _retention_days(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 36500:
        raise ValidationError(
            "Invalid retention_days: a number of days above 0 (fractions allowed), or null "
            "for the global retention",
            param="retention_days",
        )
    return float(value)


def _prices(value: Any) -> dict[str, dict[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("Invalid prices: {model id: {price key: amount}}", param="prices")
    checked: dict[str, dict[str, str]] = {}
    for model, table in value.items():
        if not isinstance(table, dict):
            raise ValidationError(f"Invalid prices for {model!r}", param=f"prices.{model}")
        checked[model] = {}
        for key, amount in table.items():
            to_micros(str(amount), param=f"prices.{model}.{key}")
            checked[model][str(key)] = str(Decimal(str(amount)))
    return checked


def check_limits(value: Any, *, param: str) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"Invalid {param}: an object of limits", param=param)
    checked = {}
    for name, amount in value.items():
        if name not in LIMIT_NAMES:
            allowed = ", ".join(LIMIT_NAMES)
            raise ValidationError(f"Unknown limit {name!r}; allowed: {allowed}", param=param)
        if amount is None:
            continue
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValidationError(
                f"Invalid {name}: a whole number, zero or more", param=f"{param}.{name}"
            )
        checked[name] = amount
    return checked


def _cache_policy(value: Any) -> Literal["free", "charge"]:
    if value not in ("free", "charge"):
        raise ValidationError("Invalid cache_policy: 'free' or 'charge'", param="cache_policy")
    return value  # type: ignore[no-any-return]
