"""A backend that exists only in tests: one module, as every backend is, to show that listing it
is all it takes for its settings to be read and its provider to be built."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.errors import ValidationError
from pixelgate.providers.base import CancelToken, GeneratedImage, ImageTask, ProgressCallback
from pixelgate.providers.keys import ProviderKey
from pixelgate.providers.registry import Backend
from pixelgate.settings import ProviderSettings, Settings


class ExampleSettings(ProviderSettings):
    api_key: SecretStr | None = None
    regions: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(default=1, ge=0)


class ExampleProvider:
    name = "example-cloud"

    def __init__(self, own: ExampleSettings) -> None:
        self.own = own
        self._key = ProviderKey(self.name, own.api_key, BACKEND.variable("api_key"))

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return self._key.missing()

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        raise ValidationError("the example backend makes no images", param="model")


def _build(settings: Settings) -> ExampleProvider:
    return ExampleProvider(BACKEND.settings_of(settings))


BACKEND = Backend("example-cloud", ExampleSettings, _build)
