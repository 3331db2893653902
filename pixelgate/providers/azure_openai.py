"""Azure OpenAI's image deployments (dall-e-3, gpt-image-1) behind the one provider interface.

Azure OpenAI speaks OpenAI's Images API (`providers/openai.py` builds and reads every request;
this module says where they go and with which credentials), learn.microsoft.com/azure/ai-
foundry/openai/reference:

- A model is called through a deployment of it, named by the operator: `POST {endpoint}/openai/
  deployments/{deployment}/images/generations?api-version={version}` (JSON) and `.../images/
  edits?api-version=...` (multipart). The deployment for each model comes from
  `PIXELGATE_AZURE_OPENAI_DEPLOYMENTS`, a JSON object keyed by the model's name upstream (its
  catalog `source`, e.g. `{"dall-e-3": "my-dalle3", "gpt-image-1": "gpt-image-1"}`) or by its
  catalog id.
- Credentials: the resource's key in an `api-key` header, or a Microsoft Entra ID access token
  (scope `https://cognitiveservices.azure.com/.default`) as `Authorization: Bearer <token>`.
- Answers and errors are OpenAI's shapes; the content filter answers 400 with code
  `content_policy_violation` (or `content_filter`), a refusal by its safety system.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field, SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.providers.keys import ProviderKey
from pixelgate.providers.openai import PATHS, OpenAIProvider
from pixelgate.providers.registry import Backend
from pixelgate.providers.upstream import UpstreamClient
from pixelgate.settings import ProviderSettings, Settings

PROVIDER = "azure-openai"
DEPLOYMENT_PATH = "/openai/deployments/{deployment}"


class AzureOpenAISettings(ProviderSettings):
    endpoint: str | None = None
    """The resource's endpoint, e.g. `https://my-resource.openai.azure.com`."""
    api_version: str = "2025-04-01-preview"
    """The data-plane API version; gpt-image-1 needs 2025-04-01-preview or later."""
    api_key: SecretStr | None = None
    entra_token: SecretStr | None = None
    """A Microsoft Entra ID access token, used instead of a key."""
    deployments: dict[str, str] = Field(default_factory=dict)
    """The deployment of each model, by its name upstream (`dall-e-3`) or its catalog id."""


class AzureOpenAIProvider(OpenAIProvider):
    name = PROVIDER
    takes_own_keys = False
    """An Azure key belongs to one resource, the operator's endpoint: a tenant's own resource
    would need its own endpoint and deployments, which tenants cannot set."""

    def __init__(
        self,
        *,
        endpoint: str | None,
        api_version: str,
        api_key: SecretStr | None,
        entra_token: SecretStr | None,
        deployments: dict[str, str],
        http: UpstreamClient,
    ) -> None:
        super().__init__(api_key=api_key or entra_token, base_url=endpoint or "", http=http)
        self._key = ProviderKey(
            self.name,
            api_key or entra_token,
            f"{BACKEND.variable('api_key')} or {BACKEND.variable('entra_token')}",
        )
        self._endpoint = endpoint
        self._api_version = api_version
        self._uses_entra = api_key is None and entra_token is not None
        self._deployments = deployments

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureOpenAIProvider:
        own = BACKEND.settings_of(settings)
        return cls(
            endpoint=own.endpoint,
            api_version=own.api_version,
            api_key=own.api_key,
            entra_token=own.entra_token,
            deployments=own.deployments,
            http=UpstreamClient.from_settings(PROVIDER, settings, base_url=own.endpoint),
        )

    def deployment(self, spec: ModelSpec) -> str | None:
        return self._deployments.get(spec.id) or self._deployments.get(spec.source or spec.id)

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        if self._endpoint is None:
            return f"provider {self.name!r} has no endpoint (set {BACKEND.variable('endpoint')})"
        missing = self._key.missing()
        if missing is not None:
            return missing
        if self.deployment(spec) is None:
            name = spec.source or spec.id
            return (
                f"provider {self.name!r} has no deployment of {name} (set "
                f'{BACKEND.variable("deployments")}, e.g. {{"{name}": "<deployment>"}})'
            )
        return None

    def url(self, spec: ModelSpec, kind: str) -> str:
        deployment = self.deployment(spec)
        assert self._endpoint is not None and deployment is not None  # unavailable_reason
        base = self._endpoint.rstrip("/") + DEPLOYMENT_PATH.format(deployment=quote(deployment))
        path = PATHS[kind].removeprefix("/v1")
        return f"{base}{path}?api-version={quote(self._api_version)}"

    def auth_headers(self, spec: ModelSpec, own_key: SecretStr | None = None) -> dict[str, str]:
        credential = self._key.require(spec)  # never a tenant's: takes_own_keys is False
        if self._uses_entra:
            return {"Authorization": f"Bearer {credential}"}
        return {"api-key": credential}


BACKEND = Backend(PROVIDER, AzureOpenAISettings, AzureOpenAIProvider.from_settings)
