"""`pixelgate pull` fetches what a diffusers folder needs of a Hub repository and no more: the
Hub is faked by its listing (the files of the real repositories), each file "downloaded" as
`huggingface_hub`'s own pattern filter selects it, so no test needs the network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
from click.testing import CliRunner
from huggingface_hub.utils._paths import filter_repo_objects

from pixelgate.cli.main import main

X4_UPSCALER = {
    "_class_name": "StableDiffusionUpscalePipeline",
    "_diffusers_version": "0.11.0.dev0",
    "low_res_scheduler": ["diffusers", "DDPMScheduler"],
    "max_noise_level": 350,
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
X4_UPSCALER_FILES = [
    ".gitattributes", "README.md", "model_index.json", "upscaled_low_res_cat.png",
    "x4-upscaler-ema.ckpt", "x4-upscaler-ema.safetensors",  # the 3.5 GB single-file checkpoint
    "low_res_scheduler/scheduler_config.json", "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors", "text_encoder/pytorch_model.bin",
    "text_encoder/pytorch_model.fp16.bin", "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.fp16.bin",
    "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
]  # fmt: skip
X4_UPSCALER_FOLDER = [
    "model_index.json", "low_res_scheduler/scheduler_config.json",
    "scheduler/scheduler_config.json", "text_encoder/config.json",
    "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
]  # fmt: skip


class FakeHub:
    """One repository: its files, its `model_index.json`, and what was fetched of it."""

    def __init__(self, files: list[str], model_index: dict[str, Any]) -> None:
        self.files = files
        self.model_index = model_index
        self.fetched: list[str] = []

    def snapshot_download(
        self,
        repo_id: str,
        *,
        local_dir: Path,
        allow_patterns: list[str] | None = None,
        ignore_patterns: list[str] | None = None,
        **_: object,
    ) -> str:
        selected = filter_repo_objects(
            self.files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns
        )
        for name in selected:
            self.fetched.append(name)
            path = Path(local_dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.model_index) if name == "model_index.json" else name)
        return str(local_dir)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    fake = FakeHub(X4_UPSCALER_FILES, X4_UPSCALER)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    yield fake


def fetched_by_pull(hub: FakeHub, tmp_path: Path, model: str) -> list[str]:
    result = CliRunner().invoke(main, ["pull", model, "--models-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    target = Path(result.stdout.strip())
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())


def test_pulling_the_x4_upscaler_fetches_its_components_not_the_root_checkpoint(
    hub: FakeHub, tmp_path: Path
) -> None:
    on_disk = fetched_by_pull(hub, tmp_path, "sd-x4-upscaler")

    assert on_disk == sorted(X4_UPSCALER_FOLDER)
    assert not {"x4-upscaler-ema.safetensors", "x4-upscaler-ema.ckpt"} & set(hub.fetched)


def test_pulling_sd_1_5_fetches_the_plain_weights_of_each_component_and_its_shards(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.model_index = {
        "_class_name": "StableDiffusionPipeline",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "requires_safety_checker": True,
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "image_encoder": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    hub.files = [
        "model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.safetensors",
        "v1-5-pruned.ckpt", "image_encoder/model.safetensors",
        "feature_extractor/preprocessor_config.json", "safety_checker/config.json",
        "safety_checker/model.safetensors", "safety_checker/model.fp16.safetensors",
        "safety_checker/pytorch_model.bin", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors", "tokenizer/merges.txt", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]  # fmt: skip

    on_disk = fetched_by_pull(hub, tmp_path, "stable-diffusion-v1-5/stable-diffusion-v1-5")

    assert on_disk == sorted(
        [
            "model_index.json", "feature_extractor/preprocessor_config.json",
            "safety_checker/config.json", "safety_checker/model.safetensors",
            "scheduler/scheduler_config.json", "text_encoder/config.json",
            "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/vocab.json",
            "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.json",
            "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
            "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
            "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
        ]
    )  # fmt: skip
