"""Tiny random-weight pipelines of each diffusers family pixelgate runs (small configs of the
real classes, the sizes diffusers' own tests use), saved with `save_pretrained` into a models
folder, and the operator catalog entries that serve them. Loaded by the provider exactly like
Hub models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelgate.providers.local_diffusion import local_folder_name
from pixelgate.providers.tiny_model import (
    build_tiny_pipeline,
    save_atomically,
    tiny_text_encoder,
    tiny_tokenizer,
)

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


def build_x4_upscaler(target: Path) -> None:
    """The SD x4 upscaler's architecture (its UNet takes the noised input image beside the
    latents, and the noise level as a class label; its VAE decodes 4x larger) at toy size."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=7,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        use_linear_projection=True,
        only_cross_attention=(True, True, False),
        num_class_embeds=1000,  # as the real one: noise levels 0 to 350 are class labels
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        scaling_factor=0.08333,
    )
    tokenizer = tiny_tokenizer()
    pipeline = StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(prediction_type="v_prediction"),
        max_noise_level=350,
    )
    save_atomically(pipeline, target)


def build_latent_upscaler(target: Path) -> None:
    """The SD x2 latent upscaler's architecture (a K-diffusion UNet on the input's latents,
    conditioned on the pooled prompt) at the size diffusers' own tests use."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionLatentUpscalePipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        act_fn="gelu",
        attention_head_dim=8,
        norm_num_groups=None,
        block_out_channels=(32, 32, 64, 64),
        time_cond_proj_dim=160,
        conv_in_kernel=1,
        conv_out_kernel=1,
        cross_attention_dim=32,
        down_block_types=(
            "KDownBlock2D",
            "KCrossAttnDownBlock2D",
            "KCrossAttnDownBlock2D",
            "KCrossAttnDownBlock2D",
        ),
        in_channels=8,
        mid_block_type=None,
        only_cross_attention=False,
        out_channels=5,
        resnet_time_scale_shift="scale_shift",
        time_embedding_type="fourier",
        timestep_post_act="gelu",
        up_block_types=(
            "KCrossAttnUpBlock2D",
            "KCrossAttnUpBlock2D",
            "KCrossAttnUpBlock2D",
            "KUpBlock2D",
        ),
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
    )
    tokenizer = tiny_tokenizer()
    pipeline = StableDiffusionLatentUpscalePipeline(
        vae=vae,
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(prediction_type="sample"),
    )
    save_atomically(pipeline, target)


UPSCALER_MODELS: dict[str, tuple[Callable[[Path], None], str, int, int]] = {
    # id: (builder, family, factor, size multiple)
    "test/x4-upscaler": (build_x4_upscaler, "diffusion-x4-upscale", 4, 8),
    "test/latent-upscaler": (build_latent_upscaler, "diffusion-upscale", 2, 64),
}


def build_upscaler_models(models_dir: Path) -> None:
    for model_id, (builder, *_rest) in UPSCALER_MODELS.items():
        target = models_dir / local_folder_name(model_id)
        if not (target / "model_index.json").exists():
            builder(target)


def upscaler_catalog_text() -> str:
    """Operator catalog entries (PIXELGATE_CATALOG_FILE) for the tiny upscalers."""
    entries = []
    for model_id, (_builder, family, factor, multiple) in UPSCALER_MODELS.items():
        limits = f"factors = [{factor}], min_side = 16, max_side = 128, multiple = {multiple}"
        entries.append(
            f"""
[[models]]
id = "{model_id}"
provider = "diffusers"
family = "{family}"
source = "{model_id}"
capabilities = ["upscale"]
limits = {{ max_n = 1, max_steps = 50, upscale = {{ {limits} }} }}
defaults = {{ num_steps = 2, guidance_scale = 2.0 }}
prices = {{ default = "0" }}
"""
        )
    return "".join(entries)
