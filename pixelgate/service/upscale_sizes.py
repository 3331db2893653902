"""Whether an upscaler takes an input image, and the size it takes it at.

Each upscaler's catalog entry says what it enlarges (`limits.upscale`): the shortest and longest
side and the most pixels of an input, and the multiple its width and height must be. An input
outside those bounds is refused, naming the image and what the model takes; one that is not a
multiple is resized down to the nearest one, and the result says so."""

from __future__ import annotations

from pixelgate.catalog import ModelSpec
from pixelgate.catalog.spec import UpscaleLimits
from pixelgate.errors import ValidationError

DEFAULT_LIMITS = UpscaleLimits()


def upscale_input_size(
    spec: ModelSpec, size: tuple[int, int], factor: int | None
) -> tuple[int, int]:
    """The size the model enlarges an input of `size` at (`size` itself when it fits), or a
    `ValidationError` on `image` saying what the model takes."""
    limits = spec.limits.upscale or DEFAULT_LIMITS
    width, height = size
    sent = f"The image is {width}x{height}"
    if max(size) > limits.max_side:
        makes = f" (it makes {factor}x that)" if factor else ""
        raise ValidationError(
            f"{sent}; model {spec.id!r} upscales images of at most {limits.max_side} px a "
            f"side{makes}. Send a smaller image",
            param="image",
        )
    if min(size) < limits.min_side:
        raise ValidationError(
            f"{sent}; model {spec.id!r} upscales images of at least {limits.min_side} px a side",
            param="image",
        )
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        raise ValidationError(
            f"{sent} ({width * height} pixels); model {spec.id!r} upscales images of at most "
            f"{limits.max_pixels} pixels",
            param="image",
        )
    multiple = limits.multiple
    fitted = (width // multiple * multiple, height // multiple * multiple)
    if min(fitted) < max(limits.min_side, 1):
        raise ValidationError(
            f"{sent}; model {spec.id!r} upscales images whose sides are multiples of "
            f"{multiple} px, at least {max(limits.min_side, multiple)} px",
            param="image",
        )
    return fitted
