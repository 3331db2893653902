"""A hosted provider's API key: where it is set, a tenant's own key in its place, and what a
missing or refused one means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.errors import BackendError, Error, ModelUnavailable


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


class KeyRefused(BackendError):
    """401/403 from a provider: the key sent was refused. The provider's error mapping sees only
    the answer, so it names the operator's key; the service, which knows whether the job ran on
    the tenant's own key (`Job.own_key`), names that one instead (`whose_key_refused`)."""

    def __init__(self, provider: str, http_status: int, *, own_key: bool = False) -> None:
        if own_key:
            message = (
                f"The tenant's own {provider} key was refused by the {provider} provider "
                f"(HTTP {http_status}); the tenant's administrator should set a valid one "
                f"(provider_keys.{provider})"
            )
        else:
            message = (
                f"The {provider} provider refused pixelgate's API key for it (HTTP "
                f"{http_status}); the operator should check the configured key"
            )
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status
        self.own_key = own_key


def key_refused(provider: str, status: int) -> BackendError:
    """401/403 from a provider, told as the configured key's refusal (the service names the
    tenant's own key instead when the job ran on it: `whose_key_refused`)."""
    return KeyRefused(provider, status)


def whose_key_refused(error: Error, *, own_key: bool) -> Error:
    """`error`, its message naming the tenant's own key when the job ran on it (`own_key`) and
    the provider refused that key; any other error as it is."""
    if own_key and isinstance(error, KeyRefused) and not error.own_key:
        return KeyRefused(error.provider, error.http_status, own_key=True)
    return error
