"""`pixelgate/shapes` ships inside the package: found without a pull, within its size budget,
safetensors only, with its model card."""

from __future__ import annotations

import json
from pathlib import Path

from pixelgate.catalog import Catalog
from pixelgate.cli.pull import pull_model
from pixelgate.providers.local_diffusion import SHIPPED_FOLDERS, LocalDiffusionProvider

FOLDER = SHIPPED_FOLDERS["builtin:shapes"]


def test_the_folder_is_a_stable_diffusion_pipeline_in_safetensors_under_20_mb() -> None:
    files = [path for path in FOLDER.rglob("*") if path.is_file()]
    weights = [path for path in files if path.suffix in {".safetensors", ".bin", ".pt", ".ckpt"}]

    assert json.loads((FOLDER / "model_index.json").read_text())["_class_name"] == (
        "StableDiffusionPipeline"
    )
    assert {path.parent.name for path in weights} == {"unet", "vae", "text_encoder"}
    assert all(path.suffix == ".safetensors" for path in weights)
    assert sum(path.stat().st_size for path in files) < 20 * 10**6


def test_the_model_card_states_data_architecture_training_metrics_and_license() -> None:
    card = (FOLDER / "README.md").read_text()
    for heading in ("## Data", "## Architecture", "## Training", "## Metrics", "## License"):
        assert heading in card
    assert "python -m training.shapes.train" in card
    assert "python -m training.shapes.evaluate" in card


def test_the_provider_serves_the_shipped_folder_without_a_pull(tmp_path: Path) -> None:
    spec = Catalog.load().resolve("pixelgate/shapes")
    provider = LocalDiffusionProvider(tmp_path / "models")

    assert provider.model_path(spec) == FOLDER
    assert provider.unavailable_reason(spec) is None


def test_pull_points_at_the_shipped_folder_and_downloads_nothing(tmp_path: Path) -> None:
    target = pull_model("shapes", models_dir=tmp_path / "models", catalog_file=None, show=False)

    assert target == FOLDER
    assert not (tmp_path / "models").exists()
