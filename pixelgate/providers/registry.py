"""Providers by name. Adding a backend is one module plus catalog entries."""

from __future__ import annotations

from pixelgate.catalog import ModelSpec
from pixelgate.errors import ModelUnavailable
from pixelgate.providers.base import Provider


class ProviderRegistry:
    def __init__(self, providers: list[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        provider = self._providers.get(spec.provider)
        if provider is None:
            return f"provider {spec.provider!r} is not configured on this server"
        return provider.unavailable_reason(spec)

    def for_model(self, spec: ModelSpec) -> Provider:
        """The provider that runs `spec`; refuses a model that cannot run here."""
        reason = self.unavailable_reason(spec)
        if reason is not None:
            raise ModelUnavailable(f"Model {spec.id!r} is unavailable: {reason}", param="model")
        return self._providers[spec.provider]
