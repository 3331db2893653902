from __future__ import annotations

from pathlib import Path

import pytest

from pixelgate.settings import Settings, load_settings


def test_environment_variables_use_the_pixelgate_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PIXELGATE_PORT", "9001")
    monkeypatch.delenv("PIXELGATE_CONFIG_FILE", raising=False)
    settings = Settings()
    assert settings.port == 9001
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'pixelgate.db'}"
    assert settings.resolved_models_dir == tmp_path / "models"


def test_a_toml_file_sets_values_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PIXELGATE_PORT", raising=False)
    config = tmp_path / "pixelgate.toml"
    config.write_text('port = 9100\nworker_threads = 2\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("PIXELGATE_WORKER_THREADS", "3")
    settings = load_settings(config)
    assert Settings().port == 8000  # the file applies to that one load only
    assert settings.port == 9100
    assert settings.worker_threads == 3


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "pixelgate.toml"
    config.write_text("prot = 9100\n")
    with pytest.raises(ValueError, match="prot"):
        load_settings(config)


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELGATE_ADMIN_KEY", "pg_very_secret")
    assert "pg_very_secret" not in repr(Settings())
