"""Any OpenAI-compatible image server as an upstream: LocalAI, vLLM-style servers, another
pixelgate (its `/oai/v1` or `/v1`).

The operator names each upstream with its API root, an optional key and the models to offer,
in `PIXELGATE_OPENAI_COMPATIBLE_UPSTREAMS` (JSON), e.g.
`{"localai": {"base_url": "http://localai:8080/v1", "api_key": "...", "models": ["sd-1.5",
{"name": "flux", "capabilities": ["generate", "edit"], "price": "0.01"}]}}`. Each model becomes
the catalog entry `<upstream>/<model>` (family `openai-compatible`: `prompt`, `n`, `size`,
`quality`), listed in `GET /v1/models` with its price; an operator's catalog file may replace
the entry by the same id.

The protocol is OpenAI's Images API as `providers/openai.py` speaks it: `POST {base_url}/
images/generations` (JSON) and `{base_url}/images/edits` (multipart, OpenAI's masks), asked for
`b64_json`, with `Authorization: Bearer <key>` when a key is set. A URL in the answer is fetched
like OpenAI's, through the egress guard, which trusts the upstream's own host.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from pixelgate.catalog import Limits, ModelSpec
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageTask,
    ProgressCallback,
    require_available,
)
from pixelgate.providers.openai import PATHS, OpenAIProvider
from pixelgate.providers.registry import Backend
from pixelgate.providers.upstream import UpstreamClient
from pixelgate.settings import ProviderSettings, Settings

PROVIDER = "openai-compatible"
FAMILY = "openai-compatible"
UPSTREAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class CompatibleModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    """The model's name at the upstream, sent as `model`."""
    capabilities: tuple[Literal["generate", "edit"], ...] = ("generate",)
    price: Decimal = Field(default=Decimal(0), ge=0)
    """Per image, charged to the caller's tenant."""
    max_n: int = Field(default=4, ge=1, le=10)
    description: str = ""
    response_format: Literal["b64_json"] | None = "b64_json"
    """None for a server that refuses the field (as OpenAI does for gpt-image models): its
    default answer, base64 or a URL, is read either way."""


class CompatibleUpstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    """The API root, with its version: `http://localai:8080/v1`, `https://pixelgate/oai/v1`."""
    api_key: SecretStr | None = None
    models: list[CompatibleModel] = Field(min_length=1)

    @field_validator("models", mode="before")
    @classmethod
    def _names_alone(cls, models: object) -> object:
        if isinstance(models, list):
            return [{"name": m} if isinstance(m, str) else m for m in models]
        return models


class OpenAICompatibleSettings(ProviderSettings):
    upstreams: dict[str, CompatibleUpstream] = Field(default_factory=dict)
    """Each upstream by its name, the first part of its models' ids."""

    @field_validator("upstreams")
    @classmethod
    def _names_fit_an_id(cls, upstreams: dict[str, CompatibleUpstream]) -> object:
        for name in upstreams:
            if not UPSTREAM_NAME.match(name):
                raise ValueError(
                    f"upstream name {name!r}: lowercase letters, digits, '-' and '_' only"
                )
        return upstreams


class CompatibleUpstreamProvider(OpenAIProvider):
    """One upstream: OpenAI's requests, sent under the upstream's own root and key."""

    name = PROVIDER
    takes_own_keys = False
    """Upstreams are the operator's servers, each with the operator's key (if any)."""

    def __init__(self, upstream: CompatibleUpstream, http: UpstreamClient) -> None:
        super().__init__(api_key=upstream.api_key, base_url=upstream.base_url, http=http)
        self._root = upstream.base_url.rstrip("/")
        self._api_key = upstream.api_key
        self._models = {model.name: model for model in upstream.models}

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        return None  # a key is optional: many local servers take none

    def url(self, spec: ModelSpec, kind: str) -> str:
        return self._root + PATHS[kind].removeprefix("/v1")

    def auth_headers(self, spec: ModelSpec, own_key: SecretStr | None = None) -> dict[str, str]:
        if self._api_key is None:
            return {}
        return {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}

    def fields(self, spec: ModelSpec, task: ImageTask) -> dict[str, Any]:
        fields = super().fields(spec, task)
        model = self._models.get(spec.source or spec.id)
        if model is not None and model.response_format is None:
            del fields["response_format"]
        return fields


class OpenAICompatibleProvider:
    """Every configured upstream; a model goes to the upstream its id starts with."""

    name = PROVIDER
    sends_one_request = True
    """A job's `n` images come from one request (see `providers.base.sends_one_request`)."""

    def __init__(self, upstreams: dict[str, CompatibleUpstreamProvider]) -> None:
        self._upstreams = upstreams

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleProvider:
        own = BACKEND.settings_of(settings)
        return cls(
            {
                name: CompatibleUpstreamProvider(
                    upstream,
                    UpstreamClient.from_settings(PROVIDER, settings, base_url=upstream.base_url),
                )
                for name, upstream in own.upstreams.items()
            }
        )

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        name = upstream_of(spec)
        if name not in self._upstreams:
            return (
                f"provider {self.name!r} has no upstream {name!r} (configure it in "
                f"{BACKEND.variable('upstreams')})"
            )
        return None

    def run(
        self,
        spec: ModelSpec,
        task: ImageTask,
        *,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[GeneratedImage]:
        require_available(spec, self.unavailable_reason(spec))
        upstream = self._upstreams[upstream_of(spec)]
        return upstream.run(spec, task, progress=progress, cancel=cancel)


def upstream_of(spec: ModelSpec) -> str:
    return spec.id.split("/", 1)[0]


def catalog_entries(settings: Settings) -> list[ModelSpec]:
    """`<upstream>/<model>` for every model of every configured upstream."""
    own = BACKEND.settings_of(settings)
    return [
        ModelSpec(
            id=f"{name}/{model.name}",
            provider=PROVIDER,
            family=FAMILY,
            source=model.name,
            capabilities=model.capabilities,
            description=model.description or f"{model.name} on the {name} upstream",
            limits=Limits(max_prompt_length=32000, max_n=model.max_n),
            prices={"default": model.price},
        )
        for name, upstream in own.upstreams.items()
        for model in upstream.models
    ]


BACKEND = Backend(
    PROVIDER,
    OpenAICompatibleSettings,
    OpenAICompatibleProvider.from_settings,
    models=catalog_entries,
)
