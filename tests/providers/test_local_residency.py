"""The model manager: models load once, stay under the memory budget, the least recently used
idle one goes first, its memory really comes back, and a model in use is never evicted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.errors import ModelUnavailable
from pixelgate.providers.base import CancelToken, ImageTask
from pixelgate.providers.local_diffusion import LocalDiffusionProvider, local_folder_name
from pixelgate.providers.model_manager import release_heap
from pixelgate.providers.tiny_model import build_tiny_pipeline

MB = 2**20
WIDE = (64, 128, 256)
"""UNet widths that make a model of about 40 MB: big enough to see in RSS."""


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def spec(model_id: str) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        provider="diffusers",
        family="diffusion",
        source=model_id,
        capabilities=("generate", "edit", "inpaint"),
    )


@pytest.fixture(scope="module")
def wide_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wide")
    for name in ("test/a", "test/b", "test/c"):
        build_tiny_pipeline(root / local_folder_name(name), unet_channels=WIDE)
    return root


def run_once(provider: LocalDiffusionProvider, model: ModelSpec) -> None:
    options = Catalog([model]).validate_options(
        model, {"prompt": "x", "width": 64, "height": 64, "num_steps": 1, "guidance_scale": 1.0}
    )
    provider.run(
        model,
        ImageTask("generate", options.with_seed(1)),
        progress=lambda _step, _total: None,
        cancel=CancelToken(),
    )


def test_lru_eviction_keeps_the_budget_and_frees_the_memory(wide_models: Path) -> None:
    provider = LocalDiffusionProvider(wide_models, device="cpu", torch_threads=1)
    a, b, c = spec("test/a"), spec("test/b"), spec("test/c")
    run_once(provider, a)
    size = provider.models.used_bytes("cpu")
    assert size > 30 * MB
    provider.models._budgets["cpu"] = int(size * 2.5)  # room for two
    run_once(provider, b)
    run_once(provider, a)  # a is now the most recently used
    release_heap()
    with_two = rss()

    run_once(provider, c)  # b, the least recently used, makes room

    release_heap()
    assert provider.models.resident() == ["test/a", "test/c"]
    assert provider.models.used_bytes("cpu") <= size * 2.5
    assert provider.models.evictions == 1
    assert rss() - with_two < size * 0.5  # c came in, b's memory went out

    before = rss()
    assert provider.models.evict("test/a")
    after = rss()
    print(f"RSS before eviction {before / MB:.0f} MB, after {after / MB:.0f} MB")
    assert before - after > size * 0.7
    assert provider.models.resident() == ["test/c"]


def test_a_model_in_use_is_never_evicted(wide_models: Path) -> None:
    provider = LocalDiffusionProvider(wide_models, device="cpu", torch_threads=1)
    a, b = spec("test/a"), spec("test/b")
    run_once(provider, a)
    provider.models._budgets["cpu"] = int(provider.models.used_bytes("cpu") * 1.5)  # room for one
    loaded_b = threading.Event()

    with provider.models.use("test/a"):  # work in flight on a

        def run_b() -> None:
            run_once(provider, b)
            loaded_b.set()

        thread = threading.Thread(target=run_b)
        thread.start()
        time.sleep(1.0)
        assert not loaded_b.is_set()  # b waits: a cannot be evicted while it works
        assert provider.models.resident() == ["test/a"]
    thread.join(60)

    assert loaded_b.is_set()
    assert provider.models.resident() == ["test/b"]


def test_a_model_loads_once_for_every_task(wide_models: Path) -> None:
    provider = LocalDiffusionProvider(wide_models, device="cpu", torch_threads=1)
    a = spec("test/a")
    run_once(provider, a)
    size = provider.models.used_bytes("cpu")
    with provider.models.use("test/a") as model:
        from pixelgate.providers.diffusion_families import family_of, pipeline_for

        base = model.pipelines["text-to-image"]
        family = family_of(base)
        redraw = pipeline_for(model.pipelines, family, "image-to-image")
        inpaint = pipeline_for(model.pipelines, family, "inpaint")
        assert redraw.unet is base.unet and inpaint.vae is base.vae
    assert provider.models.loads == 1
    assert provider.models.used_bytes("cpu") == size


def test_preload_loads_before_first_use(wide_models: Path) -> None:
    provider = LocalDiffusionProvider(wide_models, device="cpu", torch_threads=1)

    provider.preload([spec("test/b")])

    assert provider.models.resident() == ["test/b"]


def test_missing_weights_fail_fast_naming_the_model_and_the_pull_command(tmp_path: Path) -> None:
    provider = LocalDiffusionProvider(tmp_path, device="cpu")
    missing = spec("someone/missing-model")

    reason = provider.unavailable_reason(missing)
    assert reason is not None and "`pixelgate pull someone/missing-model`" in reason
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="someone/missing-model"):
        run_once(provider, missing)
    assert time.monotonic() - started < 1


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_eviction_frees_cuda_memory(wide_models: Path) -> None:
    import torch

    provider = LocalDiffusionProvider(wide_models, device="cuda")
    run_once(provider, spec("test/a"))
    before = torch.cuda.memory_allocated()

    assert provider.models.evict("test/a")

    after = torch.cuda.memory_allocated()
    print(f"CUDA allocated before eviction {before / MB:.0f} MB, after {after / MB:.0f} MB")
    assert before - after > 30 * MB


def test_pull_without_the_hub_fails_fast_naming_the_model_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from pixelgate.cli.main import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["pull", "sd-turbo", "--models-dir", str(tmp_path)])

    assert result.exit_code == 5
    assert "stabilityai/sd-turbo" in result.stderr
    assert "`pixelgate pull stabilityai/sd-turbo`" in result.stderr
    assert time.monotonic() - started < 10
