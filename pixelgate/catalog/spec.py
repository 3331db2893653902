"""What the catalog says about one model."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Capability = Literal["generate", "edit", "inpaint", "variations", "remove-background", "upscale"]
TaskKind = Literal["generate", "edit", "variation", "remove-background", "upscale"]

TASK_NAMES: dict[TaskKind, str] = {
    "generate": "text-to-image",
    "edit": "image editing",
    "variation": "image variations",
    "remove-background": "background removal",
    "upscale": "upscaling",
}

CAPABILITY_OF: dict[TaskKind, Capability] = {
    "generate": "generate",
    "variation": "variations",
    "remove-background": "remove-background",
    "upscale": "upscale",
}
"""The one capability each task but an edit needs."""


def capabilities_for(kind: TaskKind, *, masked: bool) -> frozenset[Capability]:
    """The capabilities any one of which lets a model do a task. An edit with a mask is done by
    a model that edits or one that inpaints; one without a mask only by a model that edits."""
    if kind == "edit":
        return frozenset({"edit", "inpaint"} if masked else {"edit"})
    return frozenset({CAPABILITY_OF[kind]})


class UpscaleLimits(BaseModel):
    """What an upscaler takes: its factors, and the input images it can enlarge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factors: tuple[int, ...] = ()
    """The factors it enlarges by (2, 4); empty: the model picks the output size itself
    (Stability's conservative and creative upscalers make about 4 megapixels)."""
    min_side: int = 1
    max_side: int = 1024
    """The input's shortest and longest side it takes, in pixels."""
    max_pixels: int | None = None
    """The input's most pixels (width times height), when the model caps them apart from
    `max_side`."""
    multiple: int = 1
    """The input's width and height are a multiple of this (a larger input is resized down to
    one, and the result says so)."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_prompt_length: int = 1000
    max_n: int = 4
    min_size: int = 64
    max_size: int = 2048
    size_multiple: int = 8
    max_steps: int = 100
    square_inputs: bool = False
    """The model edits square images only (dall-e-2): an input image is resized to a square
    (and the result says so)."""
    upscale: UpscaleLimits | None = None
    """An upscaler's factors and input limits."""
    transparency_as_mask: bool = False
    """An edit without a mask repaints the input image's transparent pixels (Stability's
    inpaint and erase), so an opaque image needs a mask: refused when the job is submitted."""
    takes_mask: bool = True
    """False where the model finds what to change itself (outpainting, search-and-replace, FLUX
    Kontext): an edit with a mask is refused when the job is submitted, never silently dropped."""


class ModelSpec(BaseModel):
    """One catalog entry. `family` names the option family that validates its requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    provider: str
    family: str
    modality: Literal["image"] = "image"
    capabilities: tuple[Capability, ...] = ("generate",)
    aliases: tuple[str, ...] = ()
    source: str | None = None
    """Where the weights or the upstream model come from: a Hub repo, `builtin:tiny`, or the
    provider's own model name."""
    description: str = ""
    limits: Limits = Field(default_factory=Limits)
    defaults: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, Decimal] = Field(default_factory=dict)
    """Price per image; key `default`, or `<size>` / `<quality> <size>` for finer prices, or
    `per_megapixel` for a price by the image's size."""

    fallbacks: tuple[str, ...] = ()
    """The operator's default route: models (ids or aliases) that serve a request for this
    one, in order, when it cannot run here, is rate-limited upstream or fails before its
    provider billed anything; used when the request names no `fallbacks` of its own."""

    def supports(self, kind: TaskKind, *, masked: bool = False) -> bool:
        """Whether the model does a task (`masked`: an edit that comes with a mask)."""
        return bool(capabilities_for(kind, masked=masked) & set(self.capabilities))

    def price_per_image(self, *, size: str | None = None, quality: str | None = None) -> Decimal:
        return lookup_price(self.prices, size=size, quality=quality)


def lookup_price(
    prices: Mapping[str, Decimal], *, size: str | None, quality: str | None
) -> Decimal:
    """The most specific price: `<quality> <size>`, then `<size>`, then `default`, else 0."""
    price = find_price(prices, size=size, quality=quality)
    return Decimal(0) if price is None else price


MEGAPIXEL = 1024 * 1024
"""A megapixel as the providers that price by it count them (fal: 1024x1024 is one)."""


def find_price(
    prices: Mapping[str, Decimal], *, size: str | None, quality: str | None
) -> Decimal | None:
    """The most specific price in `prices`: `<quality> <size>`, `<size>`, `per_megapixel`
    (times the image's megapixels, rounded up, for a `WxH` size), `default`; or None."""
    for key in (f"{quality} {size}", f"{size}"):
        if key in prices:
            return prices[key]
    if "per_megapixel" in prices and size is not None:
        width, _, height = size.partition("x")
        if width.isdigit() and height.isdigit():
            megapixels = -(-int(width) * int(height) // MEGAPIXEL)
            return prices["per_megapixel"] * max(1, megapixels)
    return prices.get("default")
