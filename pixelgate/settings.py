"""The one settings object: `PIXELGATE_*` environment variables over an optional TOML file.

The TOML file is named by `PIXELGATE_CONFIG_FILE` (or `pixelgate serve --config`); its keys are
the field names below without the prefix, e.g. `port = 9000`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pixelgate"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELGATE_", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; SQLite in the data directory when unset."""
    models_dir: Path | None = None
    """Where model weights live; `<data_dir>/models` when unset."""
    catalog_file: Path | None = None
    """An operator's TOML catalog, merged over the built-in one."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    """Base of the links pixelgate hands out; the request's own base URL when unset."""

    admin_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    """Signs media links; generated once and kept in the data directory when unset."""

    media_link_ttl_seconds: int = Field(default=3600, ge=1)
    retention_days: float = Field(default=30.0, gt=0)
    sync_timeout_seconds: float = Field(default=300.0, gt=0)
    max_request_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)

    worker_threads: int = Field(default=1, ge=1)
    """Jobs run at once by the in-process worker."""
    max_attempts: int = Field(default=3, ge=1)
    """Times a job interrupted by a crash is started before it is failed."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    torch_threads: int | None = Field(default=None, ge=1)

    log_level: str = "INFO"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("PIXELGATE_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Read settings once at start-up; `config_file` wins over `PIXELGATE_CONFIG_FILE`."""
    if config_file is not None:
        os.environ["PIXELGATE_CONFIG_FILE"] = str(config_file)
    return Settings(**overrides)  # type: ignore[arg-type]
