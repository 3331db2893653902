"""Models whose weights ship inside the package (`SHIPPED_FOLDERS`): served from there, with no
pull and nothing written to the models folder; a missing folder is reported, not downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.cli.pull import pull_model
from pixelgate.providers import local_diffusion
from pixelgate.providers.base import CancelToken, ImageTask
from pixelgate.providers.local_diffusion import LocalDiffusionProvider
from pixelgate.providers.tiny_model import build_tiny_pipeline

SOURCE = "builtin:test-shipped"
CATALOG = f"""
[[models]]
id = "test/shipped"
provider = "diffusers"
family = "diffusion"
source = "{SOURCE}"
capabilities = ["generate"]
defaults = {{ width = 64, height = 64, num_steps = 2, guidance_scale = 1.0 }}
"""


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "package" / "weights" / "test-shipped"
    monkeypatch.setitem(local_diffusion.SHIPPED_FOLDERS, SOURCE, folder)
    return folder


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG)
    return path


def shipped_spec(catalog_file: Path) -> ModelSpec:
    return Catalog.load(catalog_file).resolve("test/shipped")


def test_a_shipped_model_runs_from_its_folder_and_writes_nothing_to_the_models_folder(
    shipped: Path, catalog_file: Path, tmp_path: Path
) -> None:
    build_tiny_pipeline(shipped)
    spec = shipped_spec(catalog_file)
    models_dir = tmp_path / "models"
    provider = LocalDiffusionProvider(models_dir, device="cpu", torch_threads=1)
    options = Catalog([spec]).validate_options(spec, {"prompt": "a red circle"}).with_seed(3)

    images = provider.run(
        spec,
        ImageTask("generate", options),
        progress=lambda _step, _total: None,
        cancel=CancelToken(),
    )

    assert provider.model_path(spec) == shipped
    assert provider.unavailable_reason(spec) is None
    assert len(images) == 1 and images[0].data.startswith(b"\x89PNG")
    assert not models_dir.exists()


def test_a_missing_shipped_folder_is_reported_as_missing_not_as_a_pull(
    shipped: Path, catalog_file: Path, tmp_path: Path
) -> None:
    provider = LocalDiffusionProvider(tmp_path / "models")

    reason = provider.unavailable_reason(shipped_spec(catalog_file))

    assert reason is not None
    assert "missing from this installation" in reason and str(shipped) in reason
    assert "pull" not in reason


def test_pull_of_a_shipped_model_points_at_its_folder_and_downloads_nothing(
    shipped: Path, catalog_file: Path, tmp_path: Path
) -> None:
    build_tiny_pipeline(shipped)
    models_dir = tmp_path / "models"

    target = pull_model(
        "test/shipped", models_dir=models_dir, catalog_file=catalog_file, show=False
    )

    assert target == shipped
    assert not models_dir.exists()
