from __future__ import annotations

from pathlib import Path

import pytest

from pixelgate.settings import Settings, load_settings


def test_environment_variables_use_the_pixelgate_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PIXELGATE_PORT", "9001")
    monkeypatch.setenv("PIXELGATE_MODELS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("PIXELGATE_CONFIG_FILE", raising=False)
    settings = Settings()
    assert settings.port == 9001
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'pixelgate.db'}"
    assert settings.resolved_models_dir == tmp_path / "weights"


def test_models_live_in_the_user_cache_shared_by_every_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PIXELGATE_MODELS_DIR", raising=False)
    monkeypatch.delenv("PIXELGATE_REMBG_HOME", raising=False)
    monkeypatch.delenv("PIXELGATE_SAFETY_MODEL_FILE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "pixelgate" / "models"
    for data_dir in (tmp_path / "one", tmp_path / "two"):
        settings = Settings(data_dir=data_dir)
        assert settings.resolved_models_dir == cache
        assert settings.resolved_rembg_home == cache / "rembg"
        assert settings.resolved_safety_model_file == cache / "safety" / "open-nsfw.onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "pixelgate" / "models"
    assert Settings(data_dir=tmp_path / "one").resolved_models_dir == expected


def test_a_data_dirs_old_models_folder_stays_in_use_while_it_holds_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PIXELGATE_MODELS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    old = tmp_path / "data" / "models"
    (old / "rembg").mkdir(parents=True)
    cache = tmp_path / "cache" / "pixelgate" / "models"
    assert Settings(data_dir=tmp_path / "data").resolved_models_dir == cache  # empty: unused

    (old / "rembg" / "u2netp.onnx").write_bytes(b"weights")
    assert Settings(data_dir=tmp_path / "data").resolved_models_dir == old
    explicit = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "mine")
    assert explicit.resolved_models_dir == tmp_path / "mine"


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
