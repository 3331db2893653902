"""Masks and input images in each provider's convention.

pixelgate's own convention, which every provider receives its inputs from: a mask is a
greyscale PNG where white repaints and black keeps (diffusers' and Stability AI's convention
too). A caller's mask is brought to it once, when the job is accepted (`read_mask`): a mask whose
alpha channel is used (some pixel not fully opaque) is read by that channel, transparent meaning
"edit here" as OpenAI's masks mean it; any other mask by its brightness.

OpenAI's edits want the opposite encoding (`to_openai_mask`): an RGBA PNG whose fully
transparent pixels (alpha 0) may be edited, the size of the image; and the image itself a PNG
with an alpha channel (`to_openai_image`; dall-e-2 refuses RGB and JPEG).
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps


def has_transparency(image: Image.Image) -> bool:
    """Whether some pixel of `image` is not fully opaque."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return False
    alpha = image.convert("RGBA").getchannel("A")
    low, _ = alpha.getextrema()
    return int(low) < 255  # type: ignore[arg-type]


def read_mask(image: Image.Image) -> Image.Image:
    """A caller's mask as pixelgate's greyscale mask (white repaints): by its alpha channel
    when it uses one (transparent repaints), else by its brightness."""
    if has_transparency(image):
        return ImageOps.invert(image.convert("RGBA").getchannel("A"))
    return image.convert("L")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_openai_mask(data: bytes) -> bytes:
    """pixelgate's mask (white repaints) as OpenAI's: RGBA, alpha 0 where it may edit."""
    with Image.open(io.BytesIO(data)) as image:
        grey = image.convert("L")
    mask = Image.new("RGBA", grey.size, (0, 0, 0, 255))
    mask.putalpha(ImageOps.invert(grey))
    return png(mask)


def to_openai_image(data: bytes) -> bytes:
    """An input image as an RGBA PNG (its pixels unchanged, opaque where they were)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG" and image.mode == "RGBA":
            return data
        return png(image.convert("RGBA"))
