"""Previews of the current step from local models: tiny random-weight pipelines of each family
run for real, and what their step callback reports is checked."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pixelgate.catalog import Catalog
from pixelgate.providers.base import CancelToken, ImageTask, ProgressWithPreviews, StepPreview
from pixelgate.providers.local_diffusion import LocalDiffusionProvider
from tests.providers.local_pipelines import build_family_models, catalog_text


class Reports:
    """Every step a job reported, with the preview when one came."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int, StepPreview | None]] = []

    def progress(self, step: int, total: int) -> None:
        self.steps.append((step, total, None))

    def preview(self, step: int, total: int, picture: StepPreview) -> None:
        self.steps.append((step, total, picture))

    @property
    def previews(self) -> list[StepPreview]:
        return [picture for _, _, picture in self.steps if picture is not None]


@pytest.fixture(scope="module")
def family_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Catalog]:
    folder = tmp_path_factory.mktemp("families")
    models = folder / "models"
    build_family_models(models)
    catalog_file = folder / "catalog.toml"
    catalog_file.write_text(catalog_text().replace("max_size = 128", "max_size = 256"))
    return models, Catalog.load(catalog_file)


def run(
    family_catalog: tuple[Path, Catalog], model: str, *, previews: bool, **options: object
) -> Reports:
    models, catalog = family_catalog
    spec = catalog.resolve(model)
    provider = LocalDiffusionProvider(models, device="cpu", torch_threads=1)
    validated = catalog.validate_options(spec, {"prompt": "a red circle", **options})
    reports = Reports()
    progress = ProgressWithPreviews(reports.progress, reports.preview) if previews else None
    provider.run(
        spec,
        ImageTask("generate", validated.with_seed(7)),
        progress=progress or reports.progress,
        cancel=CancelToken(),
    )
    return reports


@pytest.mark.parametrize("model", ["test/sd", "test/sdxl"])
def test_a_local_run_sends_a_small_jpeg_preview_with_its_first_step(
    family_catalog: tuple[Path, Catalog], model: str
) -> None:
    # the test VAEs halve the size: a 160x96 image has 80x48 latents, shrunk to 64 px wide
    reports = run(family_catalog, model, previews=True, width=160, height=96, num_steps=3)

    assert [(step, total) for step, total, _ in reports.steps] == [(1, 3), (2, 3), (3, 3)]
    first = reports.steps[0][2]
    assert first is not None, "the first step carries a preview"
    assert first.content_type == "image/jpeg"
    assert (first.width, first.height) == (64, 38)
    with Image.open(io.BytesIO(first.data)) as image:
        assert image.format == "JPEG" and image.size == (64, 38) and image.mode == "RGB"
        assert len(set(image.getdata())) > 1, "the latents' pattern, not a flat colour"
    assert len(first.data) < 4_000
    assert first.data_uri().startswith("data:image/jpeg;base64,/9j/")


def test_a_plain_progress_callback_gets_steps_only(
    family_catalog: tuple[Path, Catalog],
) -> None:
    reports = run(family_catalog, "test/sd", previews=False, num_steps=2)

    assert reports.steps == [(1, 2, None), (2, 2, None)]


def test_flux_reports_its_steps_without_previews(family_catalog: tuple[Path, Catalog]) -> None:
    reports = run(family_catalog, "test/flux", previews=True, num_steps=2)

    assert [(step, total) for step, total, _ in reports.steps] == [(1, 2), (2, 2)]
    assert reports.previews == []
