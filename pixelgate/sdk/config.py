"""Where the SDK finds its server and key when the caller does not say."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pixelgate.paths import default_data_dir

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
ADMIN_KEY_FILE = "admin_key"


@dataclass(frozen=True)
class ClientConfig:
    """What a client needs to talk to one server; built once by `ClientConfig.resolve`."""

    base_url: str
    api_key: str | None = field(repr=False)
    timeout: float
    max_retries: int

    @classmethod
    def resolve(
        cls,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
    ) -> ClientConfig:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        return cls(
            base_url=resolve_base_url(base_url),
            api_key=resolve_api_key(api_key),
            timeout=timeout,
            max_retries=max_retries,
        )


def resolve_base_url(explicit: str | None) -> str:
    """The explicit URL, else `PIXELGATE_URL`, else the local default."""
    if explicit:
        return explicit.rstrip("/")
    from_env = os.environ.get("PIXELGATE_URL")
    if from_env:
        return from_env.rstrip("/")
    return DEFAULT_BASE_URL


def resolve_api_key(explicit: str | None) -> str | None:
    """The explicit key, else `PIXELGATE_API_KEY`, else the admin key a local server wrote to
    its data directory (readable only by the user who runs it), else none."""
    if explicit:
        return explicit
    from_env = os.environ.get("PIXELGATE_API_KEY")
    if from_env:
        return from_env
    return read_admin_key(data_dir())


def data_dir() -> Path:
    """The server's data directory, as `pixelgate serve` would pick it without a config file."""
    configured = os.environ.get("PIXELGATE_DATA_DIR")
    if configured:
        return Path(configured)
    return default_data_dir()


def read_admin_key(directory: Path) -> str | None:
    try:
        key = (directory / ADMIN_KEY_FILE).read_text().strip()
    except OSError:
        return None
    return key or None
