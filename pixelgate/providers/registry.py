"""Providers by name, and the backends that make them.

A backend is one module: it declares a `BACKEND` (its provider's name, its own settings and how
to build the provider from them) and is listed in `BACKEND_MODULES`; its models are catalog
entries naming its provider. Nothing else changes to add one: the settings object reads each
backend's declared settings as `PIXELGATE_<PROVIDER>_<SETTING>`, and the runtime builds every
backend listed here."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pixelgate.catalog import ModelSpec
from pixelgate.providers.base import Provider, require_available
from pixelgate.providers.keys import TakesOwnKeys, takes_own_keys
from pixelgate.settings import ProviderSettings, provider_setting_key

if TYPE_CHECKING:
    from pixelgate.settings import Settings

BACKEND_MODULES = (
    "pixelgate.providers.openai",
    "pixelgate.providers.stability",
    "pixelgate.providers.bfl",
    "pixelgate.providers.rembg",
    "pixelgate.providers.lanczos",
    "pixelgate.providers.imagen",
    "pixelgate.providers.azure_openai",
    "pixelgate.providers.openai_compatible",
    "pixelgate.providers.fal",
    "pixelgate.providers.comfyui",
)
"""Every backend but the local models' (the runtime's model worker process), by module."""

SettingsT = TypeVar("SettingsT", bound=ProviderSettings)


class NoSettings(ProviderSettings):
    """For a backend configured by the shared settings only."""


@dataclass(frozen=True)
class Backend(Generic[SettingsT]):
    name: str
    """The provider's name, as catalog entries name it (`provider = "openai"`)."""
    settings: type[SettingsT]
    build: Callable[[Settings], Provider]
    models: Callable[[Settings], list[ModelSpec]] | None = None
    """Catalog entries the backend makes from its settings (an operator's list of models),
    beside the ones `models.toml` has for it."""

    def settings_of(self, settings: Settings) -> SettingsT:
        """This backend's own section of `settings`."""
        section = settings.provider(self.name)
        if not isinstance(section, self.settings):
            raise TypeError(f"settings for {self.name!r} are a {type(section).__name__}")
        return section

    def variable(self, field: str) -> str:
        """The environment variable of one of its settings: `PIXELGATE_OPENAI_API_KEY`."""
        if field not in self.settings.model_fields:
            raise KeyError(f"backend {self.name!r} has no setting {field!r}")
        return f"PIXELGATE_{provider_setting_key(self.name, field)}".upper()


@cache
def backends() -> tuple[Backend[Any], ...]:
    """The backends of `BACKEND_MODULES`, each module imported once."""
    found: list[Backend[Any]] = []
    for module_name in BACKEND_MODULES:
        backend = getattr(importlib.import_module(module_name), "BACKEND", None)
        if not isinstance(backend, Backend):
            raise TypeError(f"{module_name} declares no BACKEND")
        found.append(backend)
    names = [backend.name for backend in found]
    keys = [
        provider_setting_key(backend.name, field)
        for backend in found
        for field in backend.settings.model_fields
    ]
    if len(set(names)) != len(names) or len(set(keys)) != len(keys):
        raise ValueError(f"backends share a name or a setting: {names}")
    return tuple(found)


def configured_models(settings: Settings) -> list[ModelSpec]:
    """Every backend's catalog entries made from its settings."""
    return [spec for backend in backends() if backend.models for spec in backend.models(settings)]


class ProviderRegistry:
    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    @classmethod
    def from_settings(cls, settings: Settings, *, local: Provider) -> ProviderRegistry:
        """Every listed backend built from `settings`, with the local models' provider."""
        return cls([local, *(backend.build(settings) for backend in backends())])

    def own_key_providers(self) -> tuple[str, ...]:
        """The providers whose requests may carry a tenant's own key, by name."""
        return tuple(sorted(name for name, p in self._providers.items() if takes_own_keys(p)))

    def unavailable_reason(self, spec: ModelSpec, *, own_key: bool = False) -> str | None:
        """Why `spec` cannot run here, with the operator's configuration or (`own_key`) with
        a tenant's own key for its provider; None when it can."""
        provider = self._providers.get(spec.provider)
        if provider is None:
            return f"provider {spec.provider!r} is not configured on this server"
        if not own_key:
            return provider.unavailable_reason(spec)
        if not isinstance(provider, TakesOwnKeys) or not provider.takes_own_keys:
            return f"provider {spec.provider!r} takes no tenant's own key"
        return provider.own_key_problem(spec)

    def for_model(self, spec: ModelSpec, *, own_key: bool = False) -> Provider:
        """The provider that runs `spec` (with a tenant's own key: `own_key`); refuses a model
        that cannot run here so."""
        require_available(spec, self.unavailable_reason(spec, own_key=own_key))
        return self._providers[spec.provider]
