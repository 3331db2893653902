"""The local upscalers (SD x4, SD x2 latent) in the diffusers provider, on tiny random-weight
pipelines of their real architectures: sizes, steps reported, seeds, and a cancel mid-run."""

from __future__ import annotations

import io
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.errors import Canceled
from pixelgate.providers import CancelToken, GeneratedImage, ImageInput, ImageTask
from pixelgate.providers.local_diffusion import LocalDiffusionProvider
from tests.providers.local_pipelines import build_upscaler_models, upscaler_catalog_text


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    entries = tomllib.loads(upscaler_catalog_text())["models"]
    return Catalog([ModelSpec.model_validate(entry) for entry in entries])


@pytest.fixture(scope="module")
def provider(models_dir: Path) -> LocalDiffusionProvider:
    build_upscaler_models(models_dir)
    return LocalDiffusionProvider(models_dir, device="cpu", torch_threads=1)


def picture(size: tuple[int, int]) -> ImageInput:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, format="PNG")
    return ImageInput(buffer.getvalue(), "image/png", *size)


def upscale(
    provider: LocalDiffusionProvider,
    catalog: Catalog,
    model: str,
    size: tuple[int, int],
    *,
    steps: list[tuple[int, int]] | None = None,
    cancel: CancelToken | None = None,
    **options: object,
) -> list[GeneratedImage]:
    spec = catalog.resolve(model)
    task = ImageTask(
        kind="upscale",
        options=catalog.validate_options(spec, {"seed": 1, **options}, task="upscale"),
        image=picture(size),
    )

    def progress(step: int, total: int) -> None:
        if steps is not None:
            steps.append((step, total))

    return provider.run(spec, task, progress=progress, cancel=cancel or CancelToken())


@pytest.mark.parametrize(
    ("model", "size", "out"),
    [("test/x4-upscaler", (24, 16), (96, 64)), ("test/latent-upscaler", (64, 128), (128, 256))],
)
def test_each_upscaler_makes_its_factor_and_reports_every_step(
    provider: LocalDiffusionProvider,
    catalog: Catalog,
    model: str,
    size: tuple[int, int],
    out: tuple[int, int],
) -> None:
    steps: list[tuple[int, int]] = []

    [image] = upscale(provider, catalog, model, size, steps=steps, num_steps=3, prompt="a ramp")

    assert (image.width, image.height, image.seed) == (*out, 1)
    assert Image.open(io.BytesIO(image.data)).size == out
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_the_seed_and_the_noise_level_change_the_image(
    provider: LocalDiffusionProvider, catalog: Catalog
) -> None:
    def made(**options: Any) -> bytes:
        [image] = upscale(provider, catalog, "test/x4-upscaler", (16, 16), **options)
        return image.data

    first = made(seed=3)
    assert made(seed=3) == first
    assert made(seed=4) != first
    assert made(seed=3, noise_level=200) != first


def test_a_cancel_mid_run_stops_it_with_no_image(
    provider: LocalDiffusionProvider, catalog: Catalog
) -> None:
    cancel = CancelToken()
    steps: list[tuple[int, int]] = []

    def progress_then_cancel(step: int, total: int) -> None:
        steps.append((step, total))
        cancel.cancel()

    spec = catalog.resolve("test/x4-upscaler")
    task = ImageTask(
        kind="upscale",
        options=catalog.validate_options(spec, {"seed": 1, "num_steps": 20}, task="upscale"),
        image=picture((16, 16)),
    )
    with pytest.raises(Canceled):
        provider.run(spec, task, progress=progress_then_cancel, cancel=cancel)
    assert steps == [(1, 20)]  # stopped at the first step boundary


@pytest.mark.parametrize("model", ["test/x4-upscaler", "test/latent-upscaler"])
def test_concurrent_upscales_of_one_size_share_a_pipeline_call(
    models_dir: Path, catalog: Catalog, model: str
) -> None:
    build_upscaler_models(models_dir)
    batching = LocalDiffusionProvider(
        models_dir, device="cpu", torch_threads=1, batch_window_seconds=0.5
    )
    with ThreadPoolExecutor(2) as pool:
        made = list(
            pool.map(lambda seed: upscale(batching, catalog, model, (64, 64), seed=seed), (5, 6))
        )

    assert [images[0].seed for images in made] == [5, 6]
    assert made[0][0].data != made[1][0].data
    assert batching.batch_stats(model).largest == 2
