"""Previews of an image while a local model makes it: the current latents projected to RGB by a
fixed linear map per latent format (the "latent2rgb" factors ComfyUI and A1111 use), with no
VAE call, kept small and encoded as JPEG so that one fits in a progress event as a data URI.

FLUX has none: its pipeline's latents are packed into 2x2 patches of 16 channels, and its
factors would need unpacking them first; a FLUX job reports its steps without a picture.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

from pixelgate.providers.base import StepPreview

__all__ = [
    "PREVIEW_INTERVAL_SECONDS",
    "PREVIEW_SIDE",
    "LatentFormat",
    "PreviewPacer",
    "latent_format",
    "render",
]

PREVIEW_SIDE = 64
"""The longest side of a preview, in pixels: a latent of a 512 px image is already this size."""
PREVIEW_INTERVAL_SECONDS = 0.5
"""At most one preview per job this often (and always after the first step): a preview of a
64x64 latent takes well under a millisecond to project and encode, so even a fast step pays
little, and a page redraws no more often than that anyway."""
JPEG_QUALITY = 70


@dataclass(frozen=True)
class LatentFormat:
    """How a family's latents map to RGB: `rgb = latent · factors + bias`, then from [-1, 1]."""

    factors: tuple[tuple[float, float, float], ...]
    """One row (R, G, B) per latent channel."""
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)


SD_LATENTS = LatentFormat(
    factors=(
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    )
)
"""Stable Diffusion 1.x/2.x (and any other 4-channel latents with the SD VAE's layout)."""
SDXL_LATENTS = LatentFormat(
    factors=(
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    bias=(0.1084, -0.0175, -0.0011),
)
FORMATS = {"stable-diffusion": SD_LATENTS, "stable-diffusion-xl": SDXL_LATENTS}


def latent_format(family: str) -> LatentFormat | None:
    """The latent format of a model family; None when its latents give no cheap preview."""
    return FORMATS.get(family)


def render(latents: Any, latent_format: LatentFormat) -> StepPreview:
    """A preview of one image's latents (a `channels x height x width` tensor)."""
    import torch

    factors = torch.tensor(latent_format.factors, dtype=torch.float32)
    bias = torch.tensor(latent_format.bias, dtype=torch.float32)
    small = latents.detach().float().cpu()
    height, width = small.shape[-2:]
    scale = PREVIEW_SIDE / max(height, width)
    if scale < 1:  # average first: projecting fewer pixels is cheaper, and smoother
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        small = torch.nn.functional.adaptive_avg_pool2d(small[None], size)[0]
    rgb = torch.einsum("chw,cr->hwr", small, factors) + bias
    pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels, "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return StepPreview(buffer.getvalue(), "image/jpeg", image.width, image.height)


class PreviewPacer:
    """Whether a preview is due: after the first step, then at most every interval."""

    def __init__(self, interval: float = PREVIEW_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._last: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True
