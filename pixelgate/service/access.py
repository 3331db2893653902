"""Who is calling: API keys (stored hashed), tenants, scopes, and the first admin key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from pixelgate.clock import Clock, as_utc
from pixelgate.db import Database
from pixelgate.db.tables import ApiKey, Tenant
from pixelgate.errors import Forbidden, NotFound, Unauthorized, ValidationError
from pixelgate.service.recent import ReadLately

DEFAULT_TENANT = "default"
GLOBAL_ADMIN = "admin"
"""The operators' scope: every tenant, key, price and budget. Held only by keys of the
`default` tenant, the operators' own (the bootstrap key, `PIXELGATE_ADMIN_KEY`)."""
TENANT_ADMIN = "tenant_admin"
"""A tenant's own administrator: its keys, its record and its usage; nothing of another
tenant, and none of what the operators set (prices, budgets, limits, model lists)."""
SCOPES = frozenset({GLOBAL_ADMIN, TENANT_ADMIN, "generate", "read"})
ADMIN_KEY_FILE = "admin_key"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]
    limits: dict[str, Any] | None = None
    """The key's own rate and concurrency limits."""

    @property
    def is_global_admin(self) -> bool:
        return GLOBAL_ADMIN in self.scopes

    @property
    def is_admin(self) -> bool:
        """An administrator of some reach: global, or of its own tenant."""
        return bool(self.scopes & {GLOBAL_ADMIN, TENANT_ADMIN})

    def require(self, scope: str) -> None:
        """`generate` and `read` come with either admin scope (a tenant admin's act on its own
        tenant, as every key's do); `admin` only with itself."""
        if scope in self.scopes or self.is_global_admin:
            return
        if scope != GLOBAL_ADMIN and TENANT_ADMIN in self.scopes:
            return
        raise Forbidden(f"This API key lacks the {scope!r} scope")

    def require_admin_of(self, tenant_id: str) -> None:
        """Refuse unless the caller administers `tenant_id`: a global admin, or that tenant's."""
        if self.is_global_admin or (TENANT_ADMIN in self.scopes and tenant_id == self.tenant_id):
            return
        raise Forbidden(f"This API key may not administer tenant {tenant_id!r}", param="tenant_id")


def hash_key(key: str) -> str:
    # API keys are 256-bit random secrets, so a fast hash cannot be brute-forced
    return hashlib.sha256(key.encode()).hexdigest()


def _digest(authorization: str | None) -> str:
    """The hash of the key in an `Authorization: Bearer <key>` header; raises when none."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Missing API key: send the header 'Authorization: Bearer <key>'")
    return hash_key(key.strip())


def new_key() -> str:
    return "pg_" + secrets.token_urlsafe(32)


def effective_scopes(record: ApiKey) -> frozenset[str]:
    """A key's scopes as they act. A key of another tenant than the operators' that holds
    `admin` (made before the two admin scopes were told apart) acts as its tenant's
    administrator only, never globally."""
    scopes = frozenset(record.scopes)
    if GLOBAL_ADMIN in scopes and record.tenant_id != DEFAULT_TENANT:
        return (scopes - {GLOBAL_ADMIN}) | {TENANT_ADMIN}
    return scopes


@dataclass(frozen=True)
class _ValidKey:
    principal: Principal
    expires_at: datetime | None


class AccessService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._recent: ReadLately[str, _ValidKey] = ReadLately(clock)
        """Valid keys read lately, by digest (see `recent.TRUSTED_FOR`)."""

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an `Authorization: Bearer <key>` header."""
        principal = self.recently_authenticated(authorization)
        if principal is not None:
            return principal
        digest = _digest(authorization)
        with self._db.session() as session:
            record = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise Unauthorized("Invalid API key")
        principal = self._principal_of(record)
        self._recent.remember(digest, _ValidKey(principal, record.expires_at))
        return principal

    def principal_of_key(self, key_id: str) -> Principal:
        """The principal of a key known by its id, as it is now: for work done later on a
        key's behalf (a batch's items), refused once the key is revoked or expired."""
        with self._db.session() as session:
            record = session.get(ApiKey, key_id)
        if record is None:
            raise Unauthorized("The API key that sent this request no longer exists")
        return self._principal_of(record)

    def _principal_of(self, record: ApiKey) -> Principal:
        if record.revoked_at is not None:
            raise Unauthorized("This API key has been revoked")
        if record.expires_at is not None and as_utc(record.expires_at) <= self._clock.now():
            raise Unauthorized("This API key has expired")
        return Principal(record.id, record.tenant_id, effective_scopes(record), record.limits)

    def recently_authenticated(self, authorization: str | None) -> Principal | None:
        """The caller, when the same key was found valid lately (`recent.TRUSTED_FOR`); None
        when the key must be read (`authenticate` does). Needs no database: fit for the event
        loop."""
        seen = self._recent.get(_digest(authorization))
        if seen is None:
            return None
        if seen.expires_at is not None and as_utc(seen.expires_at) <= self._clock.now():
            return None
        return seen.principal

    def create_key(
        self,
        *,
        tenant_id: str,
        name: str,
        scopes: frozenset[str],
        expires_at: datetime | None = None,
        limits: dict[str, Any] | None = None,
        origin: str = "api",
        plaintext: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key; the plaintext is returned here once and never stored."""
        unknown = scopes - SCOPES
        if unknown:
            raise ValueError(f"unknown scopes: {sorted(unknown)}")
        if GLOBAL_ADMIN in scopes and tenant_id != DEFAULT_TENANT:
            raise ValidationError(
                f"The {GLOBAL_ADMIN!r} scope reaches every tenant and belongs to the operators' "
                f"keys (tenant {DEFAULT_TENANT!r}); give a tenant's administrator "
                f"{TENANT_ADMIN!r}",
                param="scopes",
            )
        key = plaintext or new_key()
        record = ApiKey(
            id="key_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            name=name,
            key_hash=hash_key(key),
            prefix=key[:7],
            scopes=sorted(scopes),
            origin=origin,
            created_at=self._clock.now(),
            expires_at=expires_at,
            revoked_at=None,
            limits=limits,
        )
        with self._db.session() as session:
            session.add(record)
        return record, key

    def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        with self._db.session() as session:
            return list(session.scalars(query))

    def get_key(self, key_id: str) -> ApiKey:
        with self._db.session() as session:
            record = session.get(ApiKey, key_id)
        if record is None:
            raise NotFound(f"No API key {key_id!r}", param="key_id")
        return record

    def revoke(self, key_id: str) -> ApiKey:
        with self._db.session() as session:
            record = session.get(ApiKey, key_id)
            if record is None:
                raise NotFound(f"No API key {key_id!r}", param="key_id")
            if record.revoked_at is None:
                record.revoked_at = self._clock.now()
        self._recent.forget_all()
        return record

    def forget_recent_keys(self) -> None:
        """Read every key from the database again: keys were deleted there (a tenant's
        erasure), and none may stay trusted for `recent.TRUSTED_FOR` after."""
        self._recent.forget_all()

    def ensure_default_tenant(self) -> None:
        with self._db.session() as session:
            if session.get(Tenant, DEFAULT_TENANT) is None:
                session.add(Tenant(id=DEFAULT_TENANT, name="Default", created_at=self._clock.now()))

    def bootstrap_admin(self, configured_key: str | None, data_dir: Path) -> str | None:
        """Make sure an admin key exists. Returns a newly created key, to be shown once.

        With PIXELGATE_ADMIN_KEY set, that key is the admin key (an earlier one from the
        environment is revoked). Otherwise the first start creates one and writes it to
        `<data_dir>/admin_key`, readable only by its owner.
        """
        self.ensure_default_tenant()
        if configured_key:
            self._adopt_configured_key(configured_key)
            return None
        with self._db.session() as session:
            existing = session.scalar(
                select(ApiKey.id).where(ApiKey.origin == "bootstrap", ApiKey.revoked_at.is_(None))
            )
        if existing is not None:
            return None
        _, key = self.create_key(
            tenant_id=DEFAULT_TENANT, name="admin", scopes=frozenset({"admin"}), origin="bootstrap"
        )
        path = data_dir / ADMIN_KEY_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key

    def _adopt_configured_key(self, key: str) -> None:
        digest = hash_key(key)
        with self._db.session() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.origin == "env", ApiKey.key_hash != digest)
                .where(ApiKey.revoked_at.is_(None))
                .values(revoked_at=self._clock.now())
            )
            self._recent.forget_all()
            known = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == digest))
        if known is None:
            self.create_key(
                tenant_id=DEFAULT_TENANT,
                name="admin (PIXELGATE_ADMIN_KEY)",
                scopes=frozenset({"admin"}),
                origin="env",
                plaintext=key,
            )
