"""`local/tiny`: a Stable Diffusion pipeline of the real diffusers classes at toy size, with
random weights made from a fixed seed. Saved with `save_pretrained` and then loaded by the same
code as any Hub model. It draws noise, fast."""

from __future__ import annotations

import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

BUILD_SEED = 0


def tiny_tokenizer() -> Any:
    """A CLIP tokenizer over single characters: no vocabulary file to download."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + string.digits + string.punctuation:
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_text_encoder(tokenizer: Any, *, width: int = 32) -> Any:
    """A two-layer CLIP text encoder over `tokenizer`'s vocabulary, `width` wide."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=width,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )


def build_tiny_pipeline(
    target: Path,
    *,
    unet_channels: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
    text_width: int = 32,
) -> None:
    """Create the pipeline folder at `target` (atomically: built aside, then renamed).
    Wider `unet_channels` (e.g. SD's (320, 640, 1280, 1280)) make a pipeline whose UNet does a
    real model's work per step, for benchmarks."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(BUILD_SEED)
    depth = len(unet_channels)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=unet_channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (depth - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (depth - 1) + ("UpBlock2D",),
        cross_attention_dim=text_width,
        attention_head_dim=4 if unet_channels[0] < 128 else 64,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )
    tokenizer = tiny_tokenizer()
    text_encoder = tiny_text_encoder(tokenizer, width=text_width)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    save_atomically(pipeline, target)


def save_atomically(pipeline: Any, target: Path) -> None:
    """`save_pretrained` into a folder beside `target`, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        pipeline.save_pretrained(staging, safe_serialization=True)
        staging.rename(target)
    except OSError:
        if not (target / "model_index.json").exists():
            raise
        # another process built it first; theirs is identical
    finally:
        shutil.rmtree(staging, ignore_errors=True)
