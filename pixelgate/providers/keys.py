"""A hosted provider's API key: where it is set, a tenant's own key in its place, and what a
missing or refused one means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.errors import BackendError, ModelUnavailable


@dataclass(frozen=True)
class ProviderKey:
    """A hosted provider's API key from settings, and the variable that sets it."""

    provider: str
    value: SecretStr | None
    variable: str  # PIXELGATE_OPENAI_API_KEY, ...

    def missing(self) -> str | None:
        """Why the provider's models cannot run here, or None when the key is set."""
        if self.value is None:
            return f"provider {self.provider!r} has no API key (set {self.variable})"
        return None

    def require(self, spec: ModelSpec, own: SecretStr | None = None) -> str:
        """The key for a request about to be sent: the caller's tenant's `own` key when the task
        carries one (`ImageTask.own_key`), else the configured one; refuses the model when
        neither is set."""
        if own is not None:
            return own.get_secret_value()
        if self.value is None:
            raise ModelUnavailable(
                f"Model {spec.id!r} is unavailable: {self.missing()}", param="model"
            )
        return self.value.get_secret_value()


@runtime_checkable
class TakesOwnKeys(Protocol):
    """A provider whose requests can carry a tenant's own API key (`ImageTask.own_key`) in
    place of the operator's: the key is sent per request, never kept by the provider, so one
    provider (and its connection pool, which holds no credentials) serves every tenant."""

    takes_own_keys: bool

    def own_key_problem(self, spec: ModelSpec) -> str | None:
        """Why `spec` cannot run with a tenant's own key alone (it needs more than a key), or
        None when it can, whatever the operator configured."""
        ...


def takes_own_keys(provider: object) -> bool:
    return isinstance(provider, TakesOwnKeys) and provider.takes_own_keys


def key_refused(provider: str, status: int) -> BackendError:
    """401/403 from a provider: our configured key was refused; the caller's key is fine."""
    return BackendError(
        f"The {provider} provider refused pixelgate's API key for it (HTTP {status}); "
        "the operator should check the configured key"
    )
