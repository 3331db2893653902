"""Tenants' own provider keys: kept encrypted, never shown, and used for their requests.

A tenant may bring its own API key for a hosted provider that takes one (see
`providers.keys.TakesOwnKeys`: openai, stability, bfl, fal, google). The key is encrypted at
rest with Fernet (AES-128-CBC with HMAC-SHA256) under the operator's secret: the first key of
`PIXELGATE_PROVIDER_KEYS_SECRET` encrypts, all of them decrypt (`MultiFernet`), and `rotate`
encrypts every stored key again under the first. Only the last 4 characters are ever shown.

Which key a request uses is decided here, once, when it is accepted (`plan`): the tenant's own
key for the model's provider when it has one, else the operator's; a tenant limited to its own
keys (`own_keys_only`) may use no model it has no key for. The job records the decision, its
worker reads and decrypts the key when it runs, and the provider sends it with that one
request only: providers keep no tenant's key, so none reaches another tenant's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pixelgate.catalog import ModelSpec
from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import Tenant, TenantProviderKey
from pixelgate.errors import Error, ModelUnavailable, ValidationError
from pixelgate.paths import kept_secret
from pixelgate.providers import ProviderRegistry
from pixelgate.service.recent import ReadLately
from pixelgate.settings import Settings

SECRET_FILE = "provider_keys_secret"
SECRET_VARIABLE = "PIXELGATE_PROVIDER_KEYS_SECRET"
MIN_KEY_LENGTH = 8
"""Shorter is no API key; and its last 4 characters, shown, would be half of it."""
MAX_KEY_LENGTH = 4096


class KeyVault:
    """Encrypts and decrypts tenants' keys with the operator's Fernet keys."""

    def __init__(self, secrets: list[str], *, kept_in: Path, clustered: bool = False) -> None:
        """`secrets`: the configured Fernet keys, first one first; none: one kept in the file
        `kept_in`, made on first use, unless `clustered` (where each process would make its
        own)."""
        self._file = kept_in
        self._clustered = clustered
        self._fernet = _multi(secrets, SECRET_VARIABLE) if secrets else None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyVault:
        return cls(
            [secret.get_secret_value() for secret in settings.provider_keys_secret],
            kept_in=settings.data_dir / SECRET_FILE,
            clustered=settings.clustered,
        )

    def encrypt(self, key: str) -> str:
        return self._keys().encrypt(key.encode()).decode("ascii")

    def decrypt(self, token: str, *, what: str) -> str:
        try:
            return self._keys().decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise Error(
                f"The stored key of {what} cannot be decrypted: {SECRET_VARIABLE} lacks the key "
                "it was encrypted with (list the old key after the new one until "
                "`pixelgate tenants rotate-keys` has run)"
            ) from None

    def rotate(self, token: str, *, what: str) -> str:
        """`token` encrypted again under the first key."""
        try:
            return self._keys().rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            self.decrypt(token, what=what)  # raises the explained error
            raise

    def _keys(self) -> MultiFernet:
        """The configured keys, or the one kept in the data directory (made on first use)."""
        if self._fernet is None:
            if self._clustered:
                raise ValidationError(
                    "Tenants' own provider keys and webhook signing secrets need "
                    f"{SECRET_VARIABLE} in a cluster, the same "
                    "on every replica and worker (a Fernet key: "
                    "`python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`)",
                    param="provider_keys",
                )
            made = kept_secret(self._file, lambda: Fernet.generate_key().decode())
            self._fernet = _multi([made], str(self._file))
        return self._fernet


def _multi(keys: list[str], where: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError:
        raise ValueError(
            f"{where}: each key must be a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


@dataclass(frozen=True)
class KeyPlan:
    """Which key a tenant's request for a model is sent with."""

    own_key: bool
    """The tenant's own key for the model's provider; False: the operator's."""
    refusal: str | None = None
    """Why the tenant may not use the model at all (it uses its own keys only)."""


class ProviderKeys:
    def __init__(
        self, db: Database, clock: Clock, vault: KeyVault, providers: ProviderRegistry
    ) -> None:
        self._db = db
        self._clock = clock
        self._vault = vault
        self._providers = providers
        self._recent: ReadLately[str, dict[str, str]] = ReadLately(clock)
        """Each tenant's providers with a key, and the key's last 4 characters, read lately."""

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers a tenant may set a key for."""
        return self._providers.own_key_providers()

    # -- what is set ----------------------------------------------------------------------

    def summary(self, tenant_id: str) -> dict[str, str]:
        """The tenant's providers with a key of its own, each with the key's last 4
        characters; read lately (`recent.TRUSTED_FOR`), for the request path."""
        known = self._recent.get(tenant_id)
        if known is not None:
            return known
        query = select(TenantProviderKey.provider, TenantProviderKey.last4).where(
            TenantProviderKey.tenant_id == tenant_id
        )
        with self._db.session() as session:
            found = {provider: last4 for provider, last4 in session.execute(query)}
        self._recent.remember(tenant_id, found)
        return found

    def forget(self, tenant_id: str) -> None:
        """The tenant's keys changed: read them again next time."""
        self._recent.forget(tenant_id)

    def apply(
        self, session: Session, tenant_id: str, changes: Mapping[str, SecretStr | None] | None
    ) -> None:
        """Set (a key) or remove (None) each provider's key in `changes`, within the tenant's
        update; `changes` None removes every key. Every name and key is checked first."""
        if changes is None:
            mine = TenantProviderKey.tenant_id == tenant_id
            session.execute(delete(TenantProviderKey).where(mine))
            return
        for provider, key in changes.items():
            self._check(provider, key)
        for provider, key in changes.items():
            row = session.get(TenantProviderKey, (tenant_id, provider))
            if key is None:
                if row is not None:
                    session.delete(row)
                continue
            value = key.get_secret_value().strip()
            ciphertext = self._vault.encrypt(value)
            if row is None:
                row = TenantProviderKey(tenant_id=tenant_id, provider=provider)
                session.add(row)
            row.ciphertext, row.last4, row.updated_at = ciphertext, value[-4:], self._clock.now()

    def _check(self, provider: str, key: SecretStr | None) -> None:
        param = f"provider_keys.{provider}"
        if provider not in self.providers:
            raise ValidationError(
                f"Unknown provider {provider!r} for provider_keys: a tenant's own key is taken "
                f"by {', '.join(self.providers)}",
                param=param,
            )
        if key is None:
            return
        value = key.get_secret_value().strip()
        if not MIN_KEY_LENGTH <= len(value) <= MAX_KEY_LENGTH or not value.isprintable():
            raise ValidationError(
                f"Invalid {param}: an API key of {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} printable "
                "characters, or null to remove it",
                param=param,
            )

    # -- using them -----------------------------------------------------------------------

    def plan(self, tenant: Tenant, spec: ModelSpec) -> KeyPlan:
        """Which key the tenant's request for `spec` is sent with (see the module's doc)."""
        if spec.provider in self.summary(tenant.id) and spec.provider in self.providers:
            return KeyPlan(own_key=True)
        if tenant.own_keys_only:
            return KeyPlan(
                own_key=False,
                refusal=(
                    "this tenant may use only its own provider keys (own_keys_only) and has "
                    f"none for provider {spec.provider!r}"
                ),
            )
        return KeyPlan(own_key=False)

    def secret_for(self, tenant_id: str, spec: ModelSpec) -> SecretStr:
        """The tenant's own key for the provider of `spec`, decrypted, for a job about to run
        with it; refuses the model when the key was removed since the job was accepted."""
        with self._db.session() as session:
            row = session.get(TenantProviderKey, (tenant_id, spec.provider))
        if row is None:
            raise ModelUnavailable(
                f"Model {spec.id!r} is unavailable: the tenant's own key for provider "
                f"{spec.provider!r} was removed after this job was accepted",
                param="model",
            )
        what = f"tenant {tenant_id!r} for provider {spec.provider!r}"
        return SecretStr(self._vault.decrypt(row.ciphertext, what=what))

    # -- rotation -------------------------------------------------------------------------

    def rotate(self) -> int:
        """Encrypt every stored key again under the first secret key; how many there are."""
        with self._db.session() as session:
            rows = list(session.scalars(select(TenantProviderKey)))
            for row in rows:
                what = f"tenant {row.tenant_id!r} for provider {row.provider!r}"
                row.ciphertext = self._vault.rotate(row.ciphertext, what=what)
        return len(rows)
