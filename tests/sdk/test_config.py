"""Where a client finds its server and key, and what `import pixelgate` exposes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pixelgate
import pixelgate.errors
import pixelgate.sdk


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELGATE_URL", "http://example.test:9000/")
    monkeypatch.setenv("PIXELGATE_API_KEY", "pg_from_env")

    with pixelgate.Client() as client:
        assert client.base_url == "http://example.test:9000"
        assert client.config.api_key == "pg_from_env"
        assert "pg_from_env" not in repr(client.config)


def test_the_admin_key_file_is_the_last_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PIXELGATE_URL", raising=False)
    monkeypatch.delenv("PIXELGATE_API_KEY", raising=False)
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path))
    (tmp_path / "admin_key").write_text("pg_from_file\n")

    with pixelgate.Client() as client:
        assert client.base_url == "http://127.0.0.1:8000"
        assert client.config.api_key == "pg_from_file"
    with pixelgate.Client(api_key="pg_explicit") as client:
        assert client.config.api_key == "pg_explicit"


def test_no_key_anywhere_is_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PIXELGATE_API_KEY", raising=False)
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path))

    with pixelgate.Client() as client:
        assert client.config.api_key is None


def test_the_exported_surface_is_every_error_and_every_sdk_type() -> None:
    errors = {
        name
        for name, value in vars(pixelgate.errors).items()
        if not name.startswith("_")
        and isinstance(value, type)
        and issubclass(value, pixelgate.errors.Error)
    }

    assert set(pixelgate.__all__) == errors | set(pixelgate.sdk.__all__) | {"__version__"}
    for name in pixelgate.__all__:
        assert getattr(pixelgate, name) is not None
    assert issubclass(pixelgate.APIConnectionError, pixelgate.Error)


def test_importing_pixelgate_loads_no_server_or_model_code() -> None:
    heavy = ("torch", "diffusers", "fastapi", "sqlalchemy", "pydantic_settings")
    code = f"import sys, pixelgate; print([m for m in {heavy!r} if m in sys.modules])"

    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert output.strip() == "[]"
