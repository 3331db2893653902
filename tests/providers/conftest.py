"""Fixtures for the hosted providers: settings aimed at a fake upstream, with small retry
delays so that every test stays fast, and recorders for progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pixelgate.catalog import Catalog, ImageOptions, ModelSpec
from pixelgate.providers import CancelToken
from pixelgate.settings import Settings

OPENAI_KEY = "sk-test-openai-0123456789"
STABILITY_KEY = "sk-test-stability-0123456789"
BFL_KEY = "bfl-test-key-0123456789"


class Progress:
    """A progress callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, step: int, total: int) -> None:
        self.calls.append((step, total))


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            # generous: a fake upstream that encodes large images on a loaded machine takes a
            # while; the tests of the timeout itself set their own
            "provider_timeout_seconds": 15.0,
            "provider_max_retries": 2,
            "provider_retry_backoff_seconds": 0.001,
            "provider_retry_max_delay_seconds": 0.2,
            "bfl_poll_interval_seconds": 0.01,
            "bfl_poll_timeout_seconds": 5.0,
        }
        return Settings(**(values | overrides))

    return factory


@pytest.fixture
def progress() -> Progress:
    return Progress()


@pytest.fixture
def cancel() -> CancelToken:
    return CancelToken()


def options_for(catalog: Catalog, spec: ModelSpec, **raw: Any) -> ImageOptions:
    return catalog.validate_options(spec, {"prompt": "a red fox in the snow", **raw})
