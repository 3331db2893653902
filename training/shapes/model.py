"""The shapes model: the parts of a diffusers `StableDiffusionPipeline`, at a size that trains
on a CPU and draws a 64x64 image in well under a second.

- `AutoencoderKL`: 64x64x3 pixels <-> 16x16x4 latents (three blocks, factor 4).
- `UNet2DConditionModel` on the 16x16 latents, cross-attending to the caption.
- `T5EncoderModel`, 3 layers of width 64, over a word-level tokenizer of the caption grammar:
  a bidirectional encoder, so the words of the first-named object see the relation named after
  them (CLIP's causal mask hides it: a CLIP-conditioned model placed the two objects on the
  right axis every time, but which one went left was a coin toss).
- v-prediction on a zero-terminal-SNR schedule, sampled with DDIM on trailing timesteps:
  flat backgrounds need the model to see pure noise in training, and to start from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelgate.shapes import vocabulary

IMAGE_SIZE = 64
LATENT_SIZE = 16
LATENT_CHANNELS = 4
MAX_TOKENS = 40  # the longest caption of the grammar is 34 tokens with its start and end
TEXT_WIDTH = 64
TRAIN_TIMESTEPS = 1000
START, END, UNKNOWN = "<|startoftext|>", "<|endoftext|>", "<|unk|>"

SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": TRAIN_TIMESTEPS,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def build_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
    )


def build_unet() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        # attention only at 8x8 and 4x4: at 16x16 it would cost more than the rest together
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(64, 96, 128),
        layers_per_block=1,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def build_text_encoder() -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(token_ids()),
            d_model=TEXT_WIDTH,
            d_kv=TEXT_WIDTH // 4,
            d_ff=4 * TEXT_WIDTH,
            num_layers=3,
            num_heads=4,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            pad_token_id=1,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def token_ids() -> dict[str, int]:
    """The word-level vocabulary: start, end and unknown first, then the caption words."""
    return {word: i for i, word in enumerate([START, END, UNKNOWN, *vocabulary()])}


def build_tokenizer() -> Any:
    """A word-level tokenizer made with the `tokenizers` library: lower-cased words and
    punctuation, each one token, wrapped in start and end, padded with end (as CLIP does)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    ids = token_ids()
    core = Tokenizer(WordLevel(vocab=ids, unk_token=UNKNOWN))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}", special_tokens=[(START, ids[START]), (END, ids[END])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=START,
        eos_token=END,
        pad_token=END,
        unk_token=UNKNOWN,
        model_max_length=MAX_TOKENS,
    )


def caption_ids(tokenizer: Any, captions: list[str]) -> Any:
    """Token ids of a batch of captions, padded to the encoder's length, as the pipeline pads."""
    return tokenizer(
        captions, padding="max_length", max_length=MAX_TOKENS, return_tensors="pt"
    ).input_ids


def build_training_scheduler() -> Any:
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    return DDPMScheduler(
        **{key: SCHEDULE[key] for key in keys},
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        clip_sample=False,
    )


def build_sampling_scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULE)


def build_pipeline(vae: Any, unet: Any, text_encoder: Any) -> Any:
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=build_tokenizer(),
        scheduler=build_sampling_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pipeline(pipeline: Any, folder: Path) -> None:
    """A standard diffusers folder, weights in safetensors. The UNet and the autoencoder are
    stored in half precision (13 MB rather than 26 MB; diffusers loads them as float32 unless
    asked otherwise); the text encoder stays float32, as transformers loads what is stored."""
    import torch

    halved = (pipeline.unet, pipeline.vae)
    for module in halved:
        module.to(torch.float16)
    try:
        pipeline.save_pretrained(folder, safe_serialization=True)
    finally:
        for module in halved:
            module.to(torch.float32)


def parameter_count(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))
