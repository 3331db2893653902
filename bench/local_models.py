"""The pipelines `bench/local_engine.py` measures: random-weight diffusers folders of the real
architectures, built with the diffusers and transformers classes and `save_pretrained`, so that
pixelgate, a direct call and a peer server all load the same files. Nothing is downloaded.

Three scales (`--scale`):

- `small` (the default, for CPU): a tiny Stable Diffusion 1.x at 256x256 whose VAE downsamples
  8x (so the convolutions cost what they cost in real models; the same architecture as
  `/work/shared/peers/make_tiny_sd.py`, which Aquiles-Image loads too), pixelgate's own
  `pixelgate/shapes` at 64x64 (shipped in `pixelgate/weights/shapes`), and a small FLUX.1
  transformer at 256x256 that takes a few hundred milliseconds a call on two cores;
- `real` (for CUDA): an SD 2.1 / SD-Turbo-size UNet at 512x512, an SDXL-size UNet at 1024x1024
  and a FLUX.1-schnell-size transformer at 1024x1024, with small text encoders (their size does
  not change what is measured: one encoder pass a call), and `pixelgate/shapes`;
- `tiny`: the `real` case list at toy width and size, so that the CUDA mode's code path runs end
  to end on a CPU in a minute or two.

Each case says the defaults its catalog entry sets (size, steps, guidance); every request in the
benchmark uses them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Scale = Literal["tiny", "small", "real"]
SCALES: tuple[Scale, ...] = ("small", "tiny", "real")
ROOT = Path(__file__).resolve().parents[1]
SHAPES_FOLDER = ROOT / "pixelgate" / "weights" / "shapes"
"""`pixelgate/shapes`, as the package ships it (catalog source `builtin:shapes`)."""
BUILD_SEED = 0

Builder = Callable[[Path], None]
"""Writes a pipeline folder at the path given (its weights made on the build device)."""


@dataclass(frozen=True)
class Case:
    model: str
    """The catalog id requests name."""
    title: str
    width: int
    height: int
    steps: int
    guidance: float
    size_multiple: int = 16
    build: Builder | None = None
    """None: the model ships with pixelgate (its folder is `shipped`, its entry built in)."""
    shipped: Path | None = None
    aquiles: bool = False
    """Whether Aquiles-Image can serve it (it takes sizes of at least 256x256 and loads a
    diffusers folder with `AutoPipelineForText2Image`)."""

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def catalog_entry(self) -> str:
        """The operator catalog entry that serves the folder built for this case."""
        low = min(64, self.width, self.height)
        high = max(2048, self.width, self.height)
        return f"""[[models]]
id = "{self.model}"
provider = "diffusers"
family = "diffusion"
source = "{self.model}"
capabilities = ["generate"]
limits = {{ max_n = 8, min_size = {low}, max_size = {high}, \
size_multiple = {self.size_multiple}, max_steps = 100 }}
defaults = {{ width = {self.width}, height = {self.height}, \
num_steps = {self.steps}, guidance_scale = {self.guidance} }}
prices = {{ default = "0" }}
"""


def folder_name(model: str) -> str:
    """The folder under `PIXELGATE_MODELS_DIR` that holds a catalog source: `bench/sd` →
    `bench--sd` (pixelgate's rule for local folders)."""
    return model.replace("/", "--").replace(":", "--")


def cases(scale: Scale, device: str, dtype: Any) -> list[Case]:
    """The cases of a scale, their builders making weights on `device` in `dtype`."""
    shapes = Case(
        "pixelgate/shapes",
        "pixelgate/shapes (shipped; SD-style UNet, T5 text encoder)",
        64,
        64,
        20,
        5.0,
        shipped=SHAPES_FOLDER,
    )

    def on(builder: Callable[..., None], **config: Any) -> Builder:
        return lambda target: builder(target, device=device, dtype=dtype, **config)

    if scale == "small":
        return [
            Case(
                "bench/sd",
                "SD 1.x, tiny UNet (32/64), VAE with 8x downsampling",
                256,
                256,
                4,
                1.0,
                size_multiple=8,
                build=on(build_sd, **SD_SMALL),
                aquiles=True,
            ),
            shapes,
            Case(
                "bench/flux",
                "FLUX.1, small transformer (1 + 2 blocks, width 256)",
                256,
                256,
                4,
                0.0,
                build=on(build_flux, **FLUX_SMALL),
            ),
        ]
    real = scale == "real"
    return [
        Case(
            "bench/sd-turbo",
            "SD 2.1 / SD-Turbo-size UNet" if real else "SD 2.x-style UNet, toy width",
            512 if real else 64,
            512 if real else 64,
            1,
            0.0,
            size_multiple=8,
            build=on(build_sd, **(SD21_REAL if real else SD21_TINY)),
            aquiles=real,
        ),
        Case(
            "bench/sdxl",
            "SDXL-size UNet" if real else "SDXL-style UNet, toy width",
            1024 if real else 128,
            1024 if real else 128,
            8 if real else 2,
            5.0,
            size_multiple=8,
            build=on(build_sdxl, **(SDXL_REAL if real else SDXL_TINY)),
        ),
        Case(
            "bench/flux-schnell",
            "FLUX.1-schnell-size transformer" if real else "FLUX.1 transformer, toy width",
            1024 if real else 128,
            1024 if real else 128,
            4 if real else 2,
            0.0,
            build=on(build_flux, **(FLUX_REAL if real else FLUX_TINY)),
        ),
        shapes,
    ]


# -- architectures ---------------------------------------------------------------------------

SD_SMALL: dict[str, Any] = {
    "unet": {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "norm_num_groups": 32,
    },
    "vae": {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1},
    "text_width": 32,
    "scheduler": "ddim",
}
SD21_REAL: dict[str, Any] = {
    "unet": {
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "attention_head_dim": (5, 10, 20, 20),
        "use_linear_projection": True,
    },
    "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
    "text_width": 1024,
    "scheduler": "euler",
}
SD21_TINY: dict[str, Any] = {
    "unet": {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
    },
    "vae": {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1},
    "text_width": 32,
    "scheduler": "euler",
}
SDXL_REAL: dict[str, Any] = {
    "unet": {
        "block_out_channels": (320, 640, 1280),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 2, 10),
        "attention_head_dim": (5, 10, 20),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
    },
    "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
    "text_widths": (768, 1280),
}
SDXL_TINY: dict[str, Any] = {
    "unet": {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "transformer_layers_per_block": (1, 1),
        "attention_head_dim": (2, 4),
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "norm_num_groups": 32,
    },
    "vae": {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1},
    "text_widths": (32, 32),
}
FLUX_REAL: dict[str, Any] = {
    "transformer": {
        "num_layers": 19,
        "num_single_layers": 38,
        "attention_head_dim": 128,
        "num_attention_heads": 24,
        "axes_dims_rope": (16, 56, 56),
    },
    "t5_width": 4096,
    "clip_width": 768,
    "vae": {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2},
}
FLUX_SMALL: dict[str, Any] = {
    "transformer": {
        "num_layers": 1,
        "num_single_layers": 2,
        "attention_head_dim": 64,
        "num_attention_heads": 4,
        "axes_dims_rope": (8, 28, 28),
    },
    "t5_width": 64,
    "clip_width": 32,
    "vae": {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1},
}
FLUX_TINY: dict[str, Any] = {
    "transformer": {
        "num_layers": 1,
        "num_single_layers": 1,
        "attention_head_dim": 16,
        "num_attention_heads": 2,
        "axes_dims_rope": (4, 4, 8),
    },
    "t5_width": 32,
    "clip_width": 32,
    "vae": {"block_out_channels": (32, 32, 32, 32), "layers_per_block": 1},
}


# -- builders --------------------------------------------------------------------------------


@contextmanager
def building(device: str, dtype: Any) -> Iterator[None]:
    """Modules made inside are made on `device` in `dtype` directly: a FLUX-size transformer
    made on a CPU in fp32 and then moved would take minutes and 48 GB of memory."""
    import torch

    previous = torch.get_default_dtype()
    torch.manual_seed(BUILD_SEED)
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_sd(
    target: Path,
    *,
    device: str,
    dtype: Any,
    unet: dict[str, Any],
    vae: dict[str, Any],
    text_width: int,
    scheduler: str,
) -> None:
    from diffusers import (
        DDIMScheduler,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    with _tokenizer_files() as (tokenizer, files), building(device, dtype):
        pipeline = StableDiffusionPipeline(
            unet=UNet2DConditionModel(
                sample_size=32,
                in_channels=4,
                out_channels=4,
                cross_attention_dim=text_width,
                **unet,
            ),
            vae=_vae(latent_channels=4, **vae),
            text_encoder=_clip(len(tokenizer), text_width),
            tokenizer=tokenizer,
            scheduler=(
                DDIMScheduler(
                    beta_start=0.00085,
                    beta_end=0.012,
                    beta_schedule="scaled_linear",
                    clip_sample=False,
                    set_alpha_to_one=False,
                    steps_offset=1,
                )
                if scheduler == "ddim"
                else EulerDiscreteScheduler(
                    beta_start=0.00085,
                    beta_end=0.012,
                    beta_schedule="scaled_linear",
                    steps_offset=1,
                    timestep_spacing="trailing",
                )
            ),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        _save(pipeline, target, files, ("tokenizer",))


def build_sdxl(
    target: Path,
    *,
    device: str,
    dtype: Any,
    unet: dict[str, Any],
    vae: dict[str, Any],
    text_widths: tuple[int, int],
) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    first, second = text_widths
    time_dim = unet["addition_time_embed_dim"]
    with _tokenizer_files() as (tokenizer, files), building(device, dtype):
        pipeline = StableDiffusionXLPipeline(
            unet=UNet2DConditionModel(
                sample_size=128,
                in_channels=4,
                out_channels=4,
                cross_attention_dim=first + second,
                projection_class_embeddings_input_dim=6 * time_dim + second,
                **unet,
            ),
            vae=_vae(latent_channels=4, **vae),
            text_encoder=_clip(len(tokenizer), first),
            text_encoder_2=_clip(len(tokenizer), second, projection=True),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            scheduler=EulerDiscreteScheduler(
                beta_start=0.00085,
                beta_end=0.012,
                beta_schedule="scaled_linear",
                steps_offset=1,
                timestep_spacing="trailing",
            ),
        )
        _save(pipeline, target, files, ("tokenizer", "tokenizer_2"))


def build_flux(
    target: Path,
    *,
    device: str,
    dtype: Any,
    transformer: dict[str, Any],
    t5_width: int,
    clip_width: int,
    vae: dict[str, Any],
) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    latent_channels = 16
    with _tokenizer_files() as (tokenizer, files), building(device, dtype):
        pipeline = FluxPipeline(
            transformer=FluxTransformer2DModel(
                patch_size=1,
                in_channels=latent_channels * 4,
                joint_attention_dim=t5_width,
                pooled_projection_dim=clip_width,
                guidance_embeds=False,
                **transformer,
            ),
            vae=_vae(
                latent_channels=latent_channels,
                use_quant_conv=False,
                use_post_quant_conv=False,
                shift_factor=0.1159,
                scaling_factor=0.3611,
                **vae,
            ),
            text_encoder=_clip(len(tokenizer), clip_width),
            tokenizer=tokenizer,
            text_encoder_2=T5EncoderModel(
                T5Config(
                    vocab_size=len(tokenizer),
                    d_model=t5_width,
                    d_kv=64 if t5_width >= 512 else 8,
                    d_ff=1024 if t5_width >= 512 else 37,
                    num_layers=1,
                    num_heads=8 if t5_width >= 512 else 4,
                    pad_token_id=1,
                    eos_token_id=1,
                )
            ),
            tokenizer_2=tokenizer,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        )
        _save(pipeline, target, files, ("tokenizer", "tokenizer_2"))


def _vae(*, block_out_channels: tuple[int, ...], latent_channels: int, **config: Any) -> Any:
    from diffusers import AutoencoderKL

    blocks = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=block_out_channels,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=latent_channels,
        norm_num_groups=32,
        sample_size=32 * 2 ** (blocks - 1),
        **config,
    )


def _clip(vocabulary: int, width: int, *, projection: bool = False) -> Any:
    """A two-layer CLIP text encoder of the width the denoiser expects."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocabulary,
        hidden_size=width,
        intermediate_size=37 if width < 128 else width * 2,
        num_hidden_layers=2,
        num_attention_heads=4 if width < 128 else width // 64,
        max_position_embeddings=77,
        projection_dim=width,
        bos_token_id=vocabulary - 2,
        eos_token_id=vocabulary - 1,
        pad_token_id=vocabulary - 1,
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _bytes_to_unicode() -> dict[int, str]:
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(code) for code in codes], strict=True))


@contextmanager
def _tokenizer_files() -> Iterator[tuple[Any, list[Path]]]:
    """A byte-level CLIP BPE tokenizer with single-character tokens only (no vocabulary to
    download), and its `vocab.json` and `merges.txt`, which any diffusers loader (Aquiles-Image's
    `AutoPipelineForText2Image` included) needs beside the saved tokenizer."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-") as tmp:
        chars = list(_bytes_to_unicode().values())
        vocab: dict[str, int] = {}
        for suffix in ("", "</w>"):
            for char in chars:
                vocab[char + suffix] = len(vocab)
        vocab["<|startoftext|>"] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        files = [Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"]
        files[0].write_text(json.dumps(vocab))
        files[1].write_text("#version: 0.2\n")
        yield CLIPTokenizer(str(files[0]), str(files[1]), model_max_length=77), files


def _save(pipeline: Any, target: Path, files: list[Path], tokenizers: tuple[str, ...]) -> None:
    """`save_pretrained` beside `target`, the tokenizer files added, then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        pipeline.save_pretrained(staging, safe_serialization=True)
        for name in tokenizers:
            for file in files:
                shutil.copy(file, staging / name / file.name)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
