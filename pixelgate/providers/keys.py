"""A hosted provider's API key: where it is set, and what a missing or refused one means."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.errors import BackendError, ModelUnavailable


@dataclass(frozen=True)
class ProviderKey:
    """A hosted provider's API key, from settings only, and the variable that sets it."""

    provider: str
    value: SecretStr | None
    variable: str  # PIXELGATE_OPENAI_API_KEY, ...

    def missing(self) -> str | None:
        """Why the provider's models cannot run here, or None when the key is set."""
        if self.value is None:
            return f"provider {self.provider!r} has no API key (set {self.variable})"
        return None

    def require(self, spec: ModelSpec) -> str:
        """The key, for a request about to be sent; refuses the model when none is set."""
        if self.value is None:
            raise ModelUnavailable(
                f"Model {spec.id!r} is unavailable: {self.missing()}", param="model"
            )
        return self.value.get_secret_value()


def key_refused(provider: str, status: int) -> BackendError:
    """401/403 from a provider: our configured key was refused; the caller's key is fine."""
    return BackendError(
        f"The {provider} provider refused pixelgate's API key for it (HTTP {status}); "
        "the operator should check the configured key"
    )
