"""Backends describe themselves: each module declares its provider's name, settings and
factory, and the settings object reads those settings as `PIXELGATE_<PROVIDER>_<SETTING>`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelgate.catalog import ModelSpec
from pixelgate.providers import registry
from pixelgate.providers.bfl import BACKEND as BFL
from pixelgate.providers.openai import OpenAIProvider, OpenAISettings
from pixelgate.providers.registry import ProviderRegistry, backends
from pixelgate.providers.stability import BACKEND as STABILITY
from pixelgate.settings import Settings, load_settings
from tests.providers import example_backend


@pytest.fixture
def with_example_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`tests.providers.example_backend` listed beside the shipped backends."""
    modules = (*registry.BACKEND_MODULES, example_backend.__name__)
    monkeypatch.setattr(registry, "BACKEND_MODULES", modules)
    backends.cache_clear()
    yield
    backends.cache_clear()


def test_every_listed_module_declares_its_backend() -> None:
    names = [backend.name for backend in backends()]
    assert names == ["openai", "stability", "bfl", "rembg", "fal", "comfyui"]
    assert backends()[0].variable("api_key") == "PIXELGATE_OPENAI_API_KEY"
    with pytest.raises(KeyError, match="no setting 'api_ky'"):
        backends()[0].variable("api_ky")


def test_a_listed_module_is_all_a_new_backend_needs(
    with_example_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXELGATE_EXAMPLE_CLOUD_API_KEY", "ex-key")
    monkeypatch.setenv("PIXELGATE_EXAMPLE_CLOUD_REGIONS", '{"eu": "https://eu.example"}')
    settings = load_settings(data_dir=tmp_path, example_cloud_retries=3)

    registry_ = ProviderRegistry.from_settings(settings, local=ExampleLocal())
    spec = ModelSpec(id="example/one", provider="example-cloud", family="diffusion")
    provider = registry_.for_model(spec)

    assert isinstance(provider, example_backend.ExampleProvider)
    assert provider.own.api_key is not None
    assert provider.own.api_key.get_secret_value() == "ex-key"
    assert provider.own.regions == {"eu": "https://eu.example"}
    assert provider.own.retries == 3


def test_without_its_key_a_backend_names_its_variable(
    with_example_backend: None, tmp_path: Path
) -> None:
    registry_ = ProviderRegistry.from_settings(Settings(data_dir=tmp_path), local=ExampleLocal())
    spec = ModelSpec(id="example/one", provider="example-cloud", family="diffusion")
    reason = registry_.unavailable_reason(spec)
    assert reason == (
        "provider 'example-cloud' has no API key (set PIXELGATE_EXAMPLE_CLOUD_API_KEY)"
    )


def test_provider_settings_come_from_the_environment_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXELGATE_OPENAI_API_KEY", "sk-from-env")
    config = tmp_path / "pixelgate.toml"
    config.write_text(
        'openai_base_url = "https://mirror.example"\nbfl_poll_interval_seconds = 0.25\n'
    )
    settings = load_settings(config, data_dir=tmp_path)

    openai = settings.provider("openai")
    assert isinstance(openai, OpenAISettings)
    assert openai.api_key is not None and openai.api_key.get_secret_value() == "sk-from-env"
    assert openai.base_url == "https://mirror.example"
    assert BFL.settings_of(settings).poll_interval_seconds == 0.25
    assert isinstance(OpenAIProvider.from_settings(settings), OpenAIProvider)


def test_the_environment_wins_over_the_file_and_arguments_over_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "pixelgate.toml"
    config.write_text('stability_base_url = "https://file.example"\n')
    monkeypatch.setenv("PIXELGATE_STABILITY_BASE_URL", "https://env.example")
    assert STABILITY.settings_of(load_settings(config)).base_url == "https://env.example"
    chosen = load_settings(config, stability_base_url="https://argument.example")
    assert STABILITY.settings_of(chosen).base_url == "https://argument.example"


def test_a_bad_provider_setting_names_its_variable_and_hides_the_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXELGATE_OPENAI_API_KEY", "sk-very-secret")
    with pytest.raises(ValueError, match="PIXELGATE_BFL_POLL_TIMEOUT_SECONDS") as caught:
        load_settings(bfl_poll_timeout_seconds=0)
    assert "sk-very-secret" not in str(caught.value)


def test_a_structured_setting_that_is_not_json_is_named(
    with_example_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXELGATE_EXAMPLE_CLOUD_REGIONS", "eu=https://eu.example")
    with pytest.raises(ValueError, match="PIXELGATE_EXAMPLE_CLOUD_REGIONS is not valid JSON"):
        Settings()


def test_unknown_provider_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "pixelgate.toml"
    config.write_text('openai_api_kye = "sk"\n')
    with pytest.raises(ValueError, match="openai_api_kye"):
        load_settings(config)
    config.write_text('[providers.openai]\napi_key = "sk"\n')
    with pytest.raises(ValueError, match="openai_api_key"):
        load_settings(config)


class ExampleLocal(example_backend.ExampleProvider):
    """Stands in for the local models' provider, which the runtime builds itself."""

    name = "diffusers"

    def __init__(self) -> None:
        super().__init__(example_backend.ExampleSettings())
