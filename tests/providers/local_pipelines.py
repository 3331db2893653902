"""Tiny random-weight pipelines of each diffusers family pixelgate runs (small configs of the
real classes, the sizes diffusers' own tests use), saved with `save_pretrained` into a models
folder, and the operator catalog entries that serve them. Loaded by the provider exactly like
Hub models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelgate.providers.local_diffusion import local_folder_name
from pixelgate.providers.tiny_model import build_tiny_pipeline, save_atomically, tiny_tokenizer

SEED = 0


def build_sdxl(target: Path) -> None:
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
    )

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=1,
    )
    vae = _sd_vae()
    tokenizer = tiny_tokenizer()
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        projection_dim=32,
    )
    pipeline = StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tiny_tokenizer(),
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
        ),
    )
    save_atomically(pipeline, target)


def build_flux(target: Path, *, fill: bool = False) -> None:
    """FLUX.1, or FLUX.1 Fill (whose transformer also takes the masked image and the mask)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(SEED)
    latent_channels = 2 if fill else 1
    packed = latent_channels * 4
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=packed * 2 + 4 if fill else packed,
        out_channels=packed,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    tokenizer = tiny_tokenizer()
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            projection_dim=32,
        )
    )
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            pad_token_id=1,
            eos_token_id=1,
        )
    )
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    cls = FluxFillPipeline if fill else FluxPipeline
    pipeline = cls(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=tiny_tokenizer(),
        transformer=transformer,
    )
    save_atomically(pipeline, target)


def _sd_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


FAMILY_MODELS: dict[str, tuple[Callable[[Path], None], list[str], int]] = {
    # id: (builder, capabilities, size multiple)
    "test/sd": (build_tiny_pipeline, ["generate", "edit", "inpaint"], 8),
    "test/sdxl": (build_sdxl, ["generate", "edit", "inpaint"], 8),
    "test/flux": (build_flux, ["generate", "edit", "inpaint"], 16),
    "test/flux-fill": (lambda path: build_flux(path, fill=True), ["inpaint"], 16),
}


def build_family_models(models_dir: Path) -> None:
    for model_id, (builder, _capabilities, _multiple) in FAMILY_MODELS.items():
        target = models_dir / local_folder_name(model_id)
        if not (target / "model_index.json").exists():
            builder(target)


def catalog_text(extra: str = "") -> str:
    """An operator catalog (PIXELGATE_CATALOG_FILE) with an entry per test family."""
    entries = []
    for model_id, (_builder, capabilities, multiple) in FAMILY_MODELS.items():
        entries.append(
            f"""
[[models]]
id = "{model_id}"
provider = "diffusers"
family = "diffusion"
source = "{model_id}"
capabilities = {capabilities!r}
limits = {{ max_n = 4, min_size = 16, max_size = 128, size_multiple = {multiple}, max_steps = 50 }}
defaults = {{ width = 32, height = 32, num_steps = 2, guidance_scale = 2.0 }}
prices = {{ default = "0" }}
"""
        )
    return "\n".join(entries).replace("'", '"') + extra
