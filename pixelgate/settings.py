"""The one settings object: `PIXELGATE_*` environment variables over an optional TOML file.

The TOML file is named by `PIXELGATE_CONFIG_FILE` (or `pixelgate serve --config`); its keys are
the field names below without the prefix, e.g. `port = 9000`.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from pixelgate.paths import default_data_dir, default_models_dir, legacy_models_dir

_config_file: ContextVar[Path | None] = ContextVar("pixelgate_config_file", default=None)


class ProviderSettings(BaseModel):
    """One backend's own settings, declared in its module (`providers.registry.Backend`) and
    read with the others: field `api_key` of backend `openai` is `PIXELGATE_OPENAI_API_KEY`,
    or `openai_api_key` in the TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def provider_setting_key(provider: str, field: str) -> str:
    """The flat settings key of a backend's field: `openai` + `api_key` → `openai_api_key`."""
    return f"{provider.replace('-', '_')}_{field}"


class _ProviderEnvironment(PydanticBaseSettingsSource):
    """`PIXELGATE_<PROVIDER>_<SETTING>` variables of every backend's declared settings (the
    environment source reads only the fields declared here), as flat keys."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # every value comes from __call__

    def __call__(self) -> dict[str, Any]:
        environment = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for provider, fields in _provider_fields().items():
            for name, field in fields.items():
                key = provider_setting_key(provider, name)
                raw = environment.get(f"PIXELGATE_{key}".upper())
                if raw is None:
                    continue
                try:
                    values[key] = json.loads(raw) if _structured(field) else raw
                except ValueError:
                    raise SettingsError(f"PIXELGATE_{key.upper()} is not valid JSON") from None
        return values


def _structured(field: FieldInfo) -> bool:
    """Whether a setting is given as JSON in the environment (a mapping or a list)."""
    kinds = [field.annotation]
    if typing.get_origin(field.annotation) in (Union, UnionType):
        kinds = list(typing.get_args(field.annotation))
    return any(typing.get_origin(kind) in (dict, list) or kind in (dict, list) for kind in kinds)


def _provider_fields() -> dict[str, Mapping[str, FieldInfo]]:
    # the backend modules import this one; their list is read when settings are first made
    from pixelgate.providers.registry import backends

    return {backend.name: backend.settings.model_fields for backend in backends()}


class Settings(BaseSettings):
    # hide_input_in_errors: an error must not print the keys and secrets read beside the value
    model_config = SettingsConfigDict(
        env_prefix="PIXELGATE_", extra="forbid", hide_input_in_errors=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; SQLite in the data directory when unset."""
    models_dir: Path | None = None
    """Where model weights live, shared by every data directory: `$XDG_CACHE_HOME/pixelgate/models`
    (`~/.cache/pixelgate/models`) when unset, or `<data_dir>/models` if that holds files (the
    place before the shared cache)."""
    catalog_file: Path | None = None
    """An operator's TOML catalog, merged over the built-in one."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    """Base of the links pixelgate hands out; the request's own base URL when unset."""

    admin_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    """Signs media links; generated once and kept in the data directory when unset."""

    provider_keys_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Fernet keys (comma-separated) that encrypt tenants' own provider keys at rest: the first
    encrypts, every one decrypts (rotation: put a new one first, then `pixelgate tenants
    rotate-keys`). Unset: one is generated once and kept in the data directory (embedded
    mode); a cluster must set it, the same on every replica and worker."""
    media_link_ttl_seconds: int = Field(default=3600, ge=1)
    retention_days: float = Field(default=30.0, gt=0)
    sync_timeout_seconds: float = Field(default=300.0, gt=0)
    max_request_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_input_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest input image (to edit, vary or cut out), in bytes."""
    max_input_pixels: int = Field(default=4096 * 4096, ge=64 * 64)
    """Largest input image in pixels; checked from the header, before decoding."""

    worker_threads: int = Field(default=8, ge=1)
    """Jobs run at once by the in-process worker. Several, so that the jobs waiting for one
    local model can be handed to it together and batched (up to `max_batch_size`), and hosted
    calls overlap; a local model never has more than `max_batch_size` jobs out at once. A hosted
    model's job asked for synchronously runs in its request's own thread instead (see
    `JobService.run`); asynchronous ones and retries come here."""
    max_attempts: int = Field(default=3, ge=1)
    """Times a job is started (after a crash, a lost lease or a transient failure) before it
    is failed."""

    # -- cluster: the same pixelgate on PostgreSQL, Redis, S3 and Celery workers --
    broker_url: str | None = None
    """Celery broker (e.g. `redis://host:6379/0`). When set, jobs go to `pixelgate worker`
    processes through per-model queues, and `serve` runs no models itself."""
    redis_url: str | None = None
    """Redis for job events across replicas, rate-limit windows and concurrency locks."""
    storage_url: str | None = None
    """`s3://bucket/prefix` for results in S3-compatible storage; local disk when unset."""
    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint other than AWS (MinIO, Ceph, ...). Credentials come from the
    usual AWS_* variables."""
    s3_region: str | None = None
    lease_seconds: float = Field(default=30.0, gt=0)
    """A running job's lease; its worker renews it every third of this. A job whose lease
    ran out (its worker died) is queued again."""
    requeue_after_seconds: float = Field(default=60.0, gt=0)
    """A queued job no worker took for this long is handed to the queue again (the broker
    may have lost its message); a duplicate message is harmless."""
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)

    # -- tenants, limits and the cache --
    rate_limit_storage_uri: str | None = None
    """Where rate-limit windows live (the `limits` library's URI); `redis_url` when that is
    set, else `memory://`."""
    default_requests_per_minute: int | None = Field(default=None, ge=0)
    default_images_per_day: int | None = Field(default=None, ge=0)
    default_concurrent_jobs: int | None = Field(default=None, ge=0)
    """Per tenant, unless the tenant sets its own; unset is unlimited."""
    cache_shared: bool = False
    """Serve cache hits across tenants (same model, prompt, options, seed and inputs)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    torch_threads: int | None = Field(default=None, ge=1)

    log_level: str = "INFO"

    # --- local engine (issue 7): model residency, batching, device ---
    preload_models: list[str] = Field(default_factory=lambda: ["pixelgate/shapes"])
    """Local models loaded (and warmed up with one step) in the background at start, so the
    first request finds them ready; `/readyz` answers 503 until they are. Others load on first
    use. The default is the model that ships with pixelgate; `[]` loads nothing at start."""
    model_memory_budget_mb: int | None = Field(default=None, ge=1)
    """CPU RAM that resident local models may take; least recently used idle ones are
    evicted past it. None: no limit."""
    model_vram_budget_mb: int | None = Field(default=None, ge=1)
    """The same, for the memory of each CUDA device."""
    max_batch_size: int = Field(default=8, ge=1)
    """Images per pipeline call when compatible jobs are batched."""
    batch_window_ms: float = Field(default=10.0, ge=0)
    """How long a batch waits for companions after the last one arrived."""
    torch_compile: bool = False
    """`torch.compile` the denoiser of each local model (slow first call, faster later)."""
    progress_previews: bool = True
    """Progress events of a local model's job carry, now and then, a small JPEG preview of the
    image so far (its latents projected to RGB, no VAE call: well under a millisecond each)."""
    model_worker_max_jobs: int | None = Field(default=None, ge=1)
    """Local models run in a worker process of their own; it is replaced (once idle) after this
    many jobs. None: never for that reason."""
    model_worker_max_memory_mb: int | None = Field(default=None, ge=1)
    """The same, once the worker process's resident memory passes this (so memory that model
    code keeps after large jobs is returned). None: no ceiling."""
    # --- end of local engine ---

    # --- the embedded HTTP server's limits against slow clients (see `api.server`) ---
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request's headers must be complete this long after its first byte."""
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest wait for the next bytes of a request body."""
    http_keep_alive_seconds: int = Field(default=5, ge=1)
    """An idle kept-alive connection is closed after this long."""
    http_max_connections: int = Field(default=1000, ge=1)
    """Open connections past this are closed as they arrive."""

    # --- hosted providers (issue 3): their own settings, the upstream HTTP policy ---
    providers: dict[str, InstanceOf[ProviderSettings]] = Field(default_factory=dict)
    """Each backend's own settings by provider name, as its module declares them (keys,
    endpoints); set as `<provider>_<setting>` (`PIXELGATE_OPENAI_API_KEY`, `openai_api_key`
    in the file), never from requests."""
    provider_timeout_seconds: float = Field(default=120.0, gt=0)
    """How long one upstream call may wait for an answer."""
    provider_max_retries: int = Field(default=2, ge=0)
    """Retries after the first attempt, on 429, 5xx and connection failures."""
    provider_retry_backoff_seconds: float = Field(default=0.5, ge=0)
    provider_retry_max_delay_seconds: float = Field(default=20.0, ge=0)
    """Cap on one wait between attempts, a provider's `Retry-After` included."""
    provider_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts (names or addresses, comma-separated) that URLs returned by providers may point
    at even when they resolve to a loopback, private or link-local address. Empty: only public
    addresses, and each provider's configured base URL."""
    # --- end of hosted providers ---

    # --- webhooks (issue 24) ---
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts (names or addresses, comma-separated) a request's `webhook` may name even when
    they resolve to a loopback, private or link-local address. Empty: public addresses only."""
    webhook_retry_seconds: float = Field(default=24 * 3600.0, gt=0)
    """How long a delivery is tried after its event before it is marked failed (a day)."""
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    """The wait before the first retry; it doubles with each try (capped at an hour), less a
    random part of up to a half (jitter), so receivers that failed together are not retried
    together."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one delivery may take (connecting, sending, the answer)."""
    webhook_concurrency: int = Field(default=8, ge=1)
    """Tries each process sends at once (one job's deliveries still go one at a time, in
    order), so a slow receiver holds one place rather than every other delivery."""
    webhook_concurrency_per_receiver: int = Field(default=4, ge=1)
    """Of those, the most that go to one receiver (a scheme, host and port) at once, so that
    one tenant's slow receiver never holds every place and the other tenants' deliveries wait
    behind it."""
    webhook_concurrency_per_tenant: int = Field(default=4, ge=1)
    """Of those, the most for one tenant's deliveries at once, whatever receivers they go to, so
    that a tenant with several slow receivers never holds every place either. Where one tenant
    sends most of the webhooks, raise it to `webhook_concurrency`."""
    # --- end of webhooks ---

    # --- safety and background removal (issue 5) ---
    rembg_home: Path | None = None
    """rembg's model folder (its `U2NET_HOME`): `<name>.onnx` per model; `<models_dir>/rembg`
    when unset. rembg never downloads: a model whose file is missing is unavailable."""
    safety_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """NSFW score (0 to 1) above which an output image is withheld and its job fails; a tenant's
    own `safety_threshold` wins. Unset (the default): no output check, unless a tenant sets one."""
    safety_model_file: Path | None = None
    """The open_nsfw classifier (ONNX); `<models_dir>/safety/open-nsfw.onnx` when unset."""
    safety_blocked_terms: list[str] = Field(default_factory=list)
    """Words or phrases refused in prompts (case-insensitive, whole words); empty: no check."""
    # --- end of safety and background removal ---

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or legacy_models_dir(self.data_dir) or default_models_dir()

    @property
    def resolved_rembg_home(self) -> Path:
        return self.rembg_home or self.resolved_models_dir / "rembg"

    @property
    def resolved_safety_model_file(self) -> Path:
        return self.safety_model_file or self.resolved_models_dir / "safety" / "open-nsfw.onnx"

    @model_validator(mode="before")
    @classmethod
    def _gather_provider_settings(cls, data: Any) -> Any:
        """Each backend's flat `<provider>_<setting>` keys, validated by its settings model
        into `providers[<provider>]`."""
        if not isinstance(data, dict):
            return data
        if "providers" in data:
            raise ValueError(
                "provider settings are set one by one, as <provider>_<setting> "
                "(e.g. openai_api_key, PIXELGATE_OPENAI_API_KEY)"
            )
        from pixelgate.providers.registry import backends

        data = dict(data)
        sections: dict[str, ProviderSettings] = {}
        for backend in backends():
            values = {
                name: data.pop(provider_setting_key(backend.name, name))
                for name in backend.settings.model_fields
                if provider_setting_key(backend.name, name) in data
            }
            try:
                sections[backend.name] = backend.settings.model_validate(values)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                field, *inside = [str(part) for part in first["loc"]] or ["*"]
                variable = f"PIXELGATE_{provider_setting_key(backend.name, field)}".upper()
                where = f" at {'.'.join(inside)}" if inside else ""
                raise ValueError(f"{variable}{where}: {first['msg']}") from None
        data["providers"] = sections
        return data

    def provider(self, name: str) -> ProviderSettings:
        """Backend `name`'s own settings (see `providers.registry.Backend.settings_of`)."""
        return self.providers[name]

    @field_validator(
        "provider_allowed_hosts", "provider_keys_secret", "webhook_allowed_hosts", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @model_validator(mode="after")
    def _cluster_needs_a_shared_secret(self) -> Settings:
        # every replica signs media links; a key each made up alone would break them
        if self.broker_url is not None and self.secret_key is None:
            raise ValueError(
                "PIXELGATE_SECRET_KEY is required with PIXELGATE_BROKER_URL: every replica "
                "must sign media links with the same key"
            )
        return self

    @property
    def clustered(self) -> bool:
        """Jobs run in `pixelgate worker` processes rather than in `serve`."""
        return self.broker_url is not None

    @property
    def resolved_rate_limit_storage_uri(self) -> str:
        return self.rate_limit_storage_uri or self.redis_url or "memory://"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'pixelgate.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _ProviderEnvironment(settings_cls),
        ]
        config_file = _config_file.get() or os.environ.get("PIXELGATE_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Read settings once at start-up; `config_file` wins over `PIXELGATE_CONFIG_FILE`."""
    token = _config_file.set(config_file)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    finally:
        _config_file.reset(token)
