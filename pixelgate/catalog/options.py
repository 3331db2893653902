"""Option families: one pydantic model per family of models, used by every surface.

A family model validates the options of one request against the rules of its model. The model's
catalog entry arrives in the validation context (`context={"spec": spec}`), so limits and
defaults stay data while the rules stay here. Messages name the parameter and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pixelgate.catalog.spec import Limits, ModelSpec

OutputFormat = Literal["png", "jpeg", "webp"]
EditKind = Literal["image-to-image", "inpaint"]
DEFAULT_STRENGTH: dict[EditKind, float] = {"image-to-image": 0.8, "inpaint": 1.0}
"""The strength a local edit runs at when none is sent (text-to-image runs at 1.0)."""
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


def spec_of(info: ValidationInfo) -> ModelSpec:
    context = info.context or {}
    spec = context.get("spec")
    if not isinstance(spec, ModelSpec):
        raise TypeError("option families are validated with context={'spec': ModelSpec}")
    return spec


class ImageOptions(BaseModel):
    """Options every family shares, with or without a prompt (`user`). Subclasses add their own;
    unknown keys are refused.

    `n` is declared by each family rather than here: a field declared in a base comes first, and
    the families that take a prompt keep `prompt` ahead of `n` (the order of their schemas and of
    the first error reported)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    if TYPE_CHECKING:
        n: int

    user: str | None = Field(default=None, max_length=256)
    """The caller's end user: sent to providers that take it (OpenAI's `user`), kept with the
    job for the others."""

    @model_validator(mode="before")
    @classmethod
    def _apply_catalog_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """Unset options take the model's catalog defaults, which are then validated too."""
        if not isinstance(data, dict):
            return data
        defaults = {k: v for k, v in spec_of(info).defaults.items() if k in cls.model_fields}
        return defaults | {k: v for k, v in data.items() if v is not None}

    @field_validator("n", check_fields=False)
    @classmethod
    def _n_fits(cls, n: int, info: ValidationInfo) -> int:
        limit = spec_of(info).limits.max_n
        if n > limit:
            raise PydanticCustomError(
                "n_too_large",
                "Invalid n: {n}; this model makes at most {limit} per request",
                {"n": n, "limit": limit},
            )
        return n

    @classmethod
    def dimension_limits(cls, spec: ModelSpec) -> Limits:
        """The range and multiple a `width` and `height` must fit, for families that take them:
        the catalog's limits, unless the family's provider fixes its own."""
        return spec.limits

    @property
    def seed_value(self) -> int | None:
        """The requested seed, for families that take one."""
        return getattr(self, "seed", None)

    @property
    def output_format_value(self) -> str:
        return str(getattr(self, "output_format", None) or "png")

    def with_seed(self, seed: int) -> ImageOptions:
        return self.model_copy(update={"seed": seed})


class PromptOptions(ImageOptions):
    """Options of the families that draw from a prompt (every family but background removal)."""

    prompt: str
    n: int = Field(default=1, ge=1)

    @field_validator("prompt")
    @classmethod
    def _prompt_fits(cls, prompt: str, info: ValidationInfo) -> str:
        return _prompt_within_limits(prompt, spec_of(info))


def _prompt_within_limits(prompt: str, spec: ModelSpec) -> str:
    if not prompt.strip():
        raise PydanticCustomError("prompt_empty", "Prompt must not be empty")
    limit = spec.limits.max_prompt_length
    if len(prompt) > limit:
        raise PydanticCustomError(
            "prompt_too_long",
            "Prompt is {length} characters; this model accepts at most {limit}",
            {"length": len(prompt), "limit": limit},
        )
    return prompt


class BackgroundRemovalOptions(ImageOptions):
    """Background removal (rembg locally, Stability AI hosted): one transparent image per input,
    no prompt."""

    n: Literal[1] = 1
    output_format: Literal["png", "webp"] = "png"
    """Formats with an alpha channel only."""


class DallE2Options(PromptOptions):
    size: Literal["256x256", "512x512", "1024x1024"] = "1024x1024"


class DallE2VariationOptions(ImageOptions):
    """dall-e-2 variations of an input image: no prompt."""

    n: int = Field(default=1, ge=1)
    size: Literal["256x256", "512x512", "1024x1024"] = "1024x1024"


class DallE3Options(PromptOptions):
    n: Literal[1] = 1
    size: Literal["1024x1024", "1792x1024", "1024x1792"] = "1024x1024"
    quality: Literal["standard", "hd"] = "standard"
    style: Literal["vivid", "natural"] = "vivid"


class GptImageOptions(PromptOptions):
    size: Literal["auto", "1024x1024", "1536x1024", "1024x1536"] = "auto"
    quality: Literal["auto", "low", "medium", "high"] = "auto"
    background: Literal["auto", "transparent", "opaque"] = "auto"
    output_format: OutputFormat = "png"


StabilityStylePreset = Literal[
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound",
    "neon-punk", "origami", "photographic", "pixel-art", "tile-texture",
]  # fmt: skip
GrowMask = Annotated[int, Field(ge=0, le=100)]
"""Pixels Stability grows the mask's edges by, to blend them (its default when unset: 5)."""
OutpaintPixels = Annotated[int, Field(ge=0, le=2000)]


class StabilityCoreOptions(PromptOptions):
    """Stable Image Core makes one image per call; `n` images are `n` calls."""

    aspect_ratio: Literal["16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21"] = "1:1"
    negative_prompt: str | None = Field(default=None, max_length=10000)
    seed: Seed | None = None
    style_preset: StabilityStylePreset | None = None
    output_format: OutputFormat = "png"


# --- Stability AI's edit endpoints: each option is sent as the form field of its own name ---


class StabilityInpaintOptions(PromptOptions):
    """Stability inpainting: repaints what the mask (or the image's transparency) covers as
    the prompt says. The output has the input image's size; one image per call."""

    negative_prompt: str | None = Field(default=None, max_length=10000)
    grow_mask: GrowMask | None = None
    seed: Seed | None = None
    style_preset: StabilityStylePreset | None = None
    output_format: OutputFormat = "png"


class StabilitySearchAndReplaceOptions(PromptOptions):
    """Stability search-and-replace: finds what `search_prompt` names (no mask) and replaces it
    with what `prompt` says."""

    search_prompt: str = Field(min_length=1, max_length=10000)
    negative_prompt: str | None = Field(default=None, max_length=10000)
    grow_mask: GrowMask | None = None
    seed: Seed | None = None
    output_format: OutputFormat = "png"

    @field_validator("search_prompt")
    @classmethod
    def _search_prompt_says_something(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError(
                "invalid_search_prompt", "Invalid search_prompt: it must not be empty"
            )
        return value


class StabilityOutpaintOptions(ImageOptions):
    """Stability outpainting: extends the image by `left`, `right`, `up` and `down` pixels
    (at least one of them), so the output is larger than the input. The prompt is optional."""

    prompt: str | None = Field(default=None, max_length=10000)
    n: int = Field(default=1, ge=1)
    left: OutpaintPixels = 0
    right: OutpaintPixels = 0
    up: OutpaintPixels = 0
    down: OutpaintPixels = 0
    creativity: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: Seed | None = None
    output_format: OutputFormat = "png"

    @model_validator(mode="after")
    def _extends_somewhere(self) -> StabilityOutpaintOptions:
        if not (self.left or self.right or self.up or self.down):
            raise PydanticCustomError(
                "invalid_left",
                "Invalid outpaint: left, right, up and down are all 0; send at least one of "
                "them (pixels to add on that side, 1 to 2000)",
                {"param": "left"},
            )
        return self


class StabilityEraseOptions(ImageOptions):
    """Stability erase: removes what the mask (or the image's transparency) covers and fills
    it in from its surroundings. No prompt."""

    n: int = Field(default=1, ge=1)
    grow_mask: GrowMask | None = None
    seed: Seed | None = None
    output_format: OutputFormat = "png"


FLUX_LIMITS = Limits(min_size=256, max_size=1440, size_multiple=32)
"""Black Forest Labs' rule for FLUX 1.1 [pro] widths and heights, whatever the catalog says."""


def _flux_dimension(name: str, value: int) -> int:
    low, high, multiple = FLUX_LIMITS.min_size, FLUX_LIMITS.max_size, FLUX_LIMITS.size_multiple
    if not low <= value <= high or value % multiple != 0:
        raise PydanticCustomError(
            f"invalid_{name}",
            "Invalid {name}: {value}",
            {"name": name, "value": value},
        )
    return value


def _safety_tolerance(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise PydanticCustomError(
            "invalid_safety_tolerance",
            "Invalid safety tolerance: {value}; allowed: an integer from 1 to 5",
            {"value": value},
        )
    return value


def _dimension_within_limits(name: str, value: int, spec: ModelSpec) -> int:
    """A width or height within the model's limits: its multiple, in its range."""
    limits = spec.limits
    if not limits.min_size <= value <= limits.max_size or value % limits.size_multiple:
        raise PydanticCustomError(
            f"invalid_{name}",
            "Invalid {name}: {value}; allowed: multiples of {multiple} in [{low}, {high}]",
            {
                "name": name,
                "value": value,
                "multiple": limits.size_multiple,
                "low": limits.min_size,
                "high": limits.max_size,
            },
        )
    return value


def _steps_within_limits(value: int, spec: ModelSpec) -> int:
    limit = spec.limits.max_steps
    if value > limit:
        raise PydanticCustomError(
            "invalid_num_steps",
            "Invalid num_steps: {value}; allowed: 1 to {limit}",
            {"value": value, "limit": limit},
        )
    return value


class FluxOptions(PromptOptions):
    """Black Forest Labs FLUX 1.1 [pro]: width and height are multiples of 32 in [256, 1440].
    One image per task; `n` images are `n` tasks."""

    width: int = 1024
    height: int = 768
    prompt_upsampling: bool = False
    safety_tolerance: int = 2
    seed: Seed | None = None
    output_format: Literal["jpeg", "png"] = "jpeg"

    @classmethod
    def dimension_limits(cls, spec: ModelSpec) -> Limits:
        return FLUX_LIMITS

    @field_validator("width", "height", mode="after")
    @classmethod
    def _dimension_ok(cls, value: int, info: ValidationInfo) -> int:
        return _flux_dimension(str(info.field_name), value)

    @field_validator("safety_tolerance", mode="before")
    @classmethod
    def _tolerance_ok(cls, value: Any) -> int:
        return _safety_tolerance(value)


class FluxKontextOptions(PromptOptions):
    aspect_ratio: str = "1:1"
    prompt_upsampling: bool = False
    safety_tolerance: int = 2
    seed: Seed | None = None
    output_format: Literal["jpeg", "png"] = "png"

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio_ok(cls, value: str) -> str:
        parts = value.split(":")
        ok = len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts)
        if ok:
            ratio = int(parts[0]) / int(parts[1])
            ok = 1 / 4 <= ratio <= 4
        if not ok:
            raise PydanticCustomError(
                "invalid_aspect_ratio",
                "Invalid aspect ratio: {value}; allowed: W:H between 1:4 and 4:1",
                {"value": value},
            )
        return value

    @field_validator("safety_tolerance", mode="before")
    @classmethod
    def _tolerance_ok(cls, value: Any) -> int:
        return _safety_tolerance(value)


class DiffusionOptions(PromptOptions):
    """Local diffusers models: sizes are the model's multiple within its limits."""

    width: int
    height: int
    num_steps: int = Field(ge=1)
    guidance_scale: float = Field(ge=0.0, le=30.0)
    negative_prompt: str | None = Field(default=None, max_length=2000)
    seed: Seed | None = None
    output_format: OutputFormat = "png"
    strength: float | None = Field(default=None, gt=0.0, le=1.0)
    """Edits only: how far to move from the input image (1 repaints fully). Unset: 0.8 for
    image-to-image, 1.0 for inpainting."""

    @field_validator("width", "height", mode="after")
    @classmethod
    def _dimension_ok(cls, value: int, info: ValidationInfo) -> int:
        return _dimension_within_limits(str(info.field_name), value, spec_of(info))

    @field_validator("num_steps", mode="after")
    @classmethod
    def _steps_ok(cls, value: int, info: ValidationInfo) -> int:
        return _steps_within_limits(value, spec_of(info))

    @model_validator(mode="after")
    def _edit_runs_a_step(self, info: ValidationInfo) -> DiffusionOptions:
        """An edit denoises `int(num_steps * strength)` steps (diffusers' rounding); none at
        all is refused here rather than failing inside the pipeline."""
        edit: EditKind | None = (info.context or {}).get("edit")
        if edit is None:
            return self
        strength = self.strength or DEFAULT_STRENGTH[edit]
        if int(self.num_steps * strength) >= 1:
            return self
        needed = math.ceil(1 / strength - 1e-9)
        while int(needed * strength) < 1:
            needed += 1
        sent = "strength" if self.strength is not None else "the default strength"
        raise PydanticCustomError(
            "invalid_num_steps",
            "Invalid num_steps: {steps} at {sent} {strength} runs no denoising step (an edit "
            "runs num_steps * strength, rounded down); send num_steps of at least {needed}, or "
            "a higher strength",
            {
                "param": "num_steps",
                "steps": self.num_steps,
                "sent": sent,
                "strength": strength,
                "needed": needed,
            },
        )

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


class ImagenCommonOptions(PromptOptions):
    """What Google's Imagen takes for generation and editing alike. `n` is its sampleCount
    (1 to 4, the catalog's `max_n` per model). A seed makes results reproducible only without
    the invisible SynthID watermark, so Imagen takes one only with `add_watermark` false."""

    person_generation: Literal["dont_allow", "allow_adult", "allow_all"] = "allow_adult"
    safety_setting: Literal[
        "block_low_and_above", "block_medium_and_above", "block_only_high", "block_none"
    ] = "block_medium_and_above"
    seed: Seed | None = None
    add_watermark: bool = True
    output_format: Literal["png", "jpeg"] = "png"

    @model_validator(mode="after")
    def _seed_needs_no_watermark(self) -> ImagenCommonOptions:
        if self.seed is not None and self.add_watermark:
            raise PydanticCustomError(
                "invalid_seed",
                "Invalid seed: Imagen takes a seed only with add_watermark false (a watermarked "
                "image is not reproducible); send add_watermark=false, or no seed",
                {"param": "seed"},
            )
        return self

    def with_seed(self, seed: int) -> ImageOptions:
        # the seed a job is given to be reproducible: a watermarked image never is
        return super().with_seed(seed) if not self.add_watermark else self


class ImagenOptions(ImagenCommonOptions):
    """Imagen 3 and 4 text-to-image (imagen-3.0-generate-002, imagen-4.0-*): no negative
    prompt on these models."""

    aspect_ratio: Literal["1:1", "3:4", "4:3", "9:16", "16:9"] = "1:1"


class ImagenEditOptions(ImagenCommonOptions):
    """Imagen 3 editing (imagen-3.0-capability-001): the output has the input image's size.
    `edit_mode` picks the edit; `mask_mode` where it applies: `user-provided` (the request's
    mask, white repaints; the default when one is sent), or a mask Imagen computes itself
    (`background`, `foreground`; a background swap computes the background by default)."""

    edit_mode: Literal["inpaint-insertion", "inpaint-removal", "outpaint", "background-swap"] = (
        "inpaint-insertion"
    )
    mask_mode: Literal["user-provided", "background", "foreground"] | None = None
    mask_dilation: float | None = Field(default=None, ge=0.0, le=1.0)
    """How far the mask grows, as a fraction of the image's width."""
    negative_prompt: str | None = Field(default=None, max_length=10000)
    base_steps: int | None = Field(default=None, ge=1, le=75)
    """Sampling steps; Imagen's own default when unset."""


class OpenAICompatibleOptions(PromptOptions):
    """A model behind another OpenAI-compatible image server (LocalAI, vLLM-style servers,
    another pixelgate): the Images API's own fields; that server checks their values."""

    size: str | None = Field(default=None, pattern=r"^(auto|[1-9][0-9]{0,4}x[1-9][0-9]{0,4})$")
    """`WIDTHxHEIGHT` or `auto`; the server's default when unset."""
    quality: str | None = Field(default=None, min_length=1, max_length=32)


# --- fal.ai's FLUX endpoints (the `fal` provider) ---

FAL_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
"""fal's `image_size` presets and the pixels each makes."""
FAL_DEFAULT_IMAGE_SIZE = "landscape_4_3"
FalImageSize = Literal[
    "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"
]
FalAspectRatio = Literal["21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"]
FalSafetyTolerance = Annotated[int, Field(ge=1, le=6)]
"""1 (strictest) to 6; sent as fal's string enum."""


class FalSizedOptions(PromptOptions):
    """fal's FLUX text-to-image endpoints: the size is `image_size`, one of fal's presets, or
    `width` and `height` (the model's multiple within its limits); neither: landscape_4_3. All
    `n` images come from one request (fal's `num_images`) and share its seed."""

    image_size: FalImageSize | None = None
    width: int | None = None
    height: int | None = None
    seed: Seed | None = None
    output_format: Literal["jpeg", "png"] = "jpeg"

    @field_validator("width", "height", mode="after")
    @classmethod
    def _dimension_ok(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        return _dimension_within_limits(str(info.field_name), value, spec_of(info))

    @model_validator(mode="after")
    def _one_size(self) -> FalSizedOptions:
        sized = (self.width is not None, self.height is not None)
        if self.image_size is not None and any(sized):
            raise PydanticCustomError(
                "invalid_image_size",
                "Invalid image_size: send image_size or width and height, not both",
                {"param": "image_size"},
            )
        if sized[0] != sized[1]:
            missing = "height" if sized[0] else "width"
            raise PydanticCustomError(
                f"invalid_{missing}",
                "Invalid {missing}: width and height are sent together",
                {"param": missing, "missing": missing},
            )
        return self

    @property
    def pixels(self) -> tuple[int, int]:
        """The width and height the request makes."""
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return FAL_IMAGE_SIZES[self.image_size or FAL_DEFAULT_IMAGE_SIZE]

    @property
    def size(self) -> str:
        width, height = self.pixels
        return f"{width}x{height}"


class FalFluxProOptions(FalSizedOptions):
    """fal-ai/flux-pro/v1.1."""

    safety_tolerance: FalSafetyTolerance = 2
    enhance_prompt: bool = False


class FalFluxSchnellOptions(FalSizedOptions):
    """fal-ai/flux/schnell (and, with a guidance scale, dev): steps within the model's limit."""

    num_steps: int = Field(default=4, ge=1)
    enable_safety_checker: bool = True

    @field_validator("num_steps", mode="after")
    @classmethod
    def _steps_ok(cls, value: int, info: ValidationInfo) -> int:
        return _steps_within_limits(value, spec_of(info))


class FalFluxDevOptions(FalFluxSchnellOptions):
    """fal-ai/flux/dev."""

    guidance_scale: float = Field(default=3.5, ge=1.0, le=20.0)


class FalFluxUltraOptions(PromptOptions):
    """fal-ai/flux-pro/v1.1-ultra: an aspect ratio (up to 4 megapixels), and `raw` for less
    processed, more natural images."""

    aspect_ratio: FalAspectRatio = "16:9"
    raw: bool = False
    seed: Seed | None = None
    safety_tolerance: FalSafetyTolerance = 2
    enhance_prompt: bool = False
    output_format: Literal["jpeg", "png"] = "jpeg"


class FalFluxKontextOptions(PromptOptions):
    """fal-ai/flux-pro/kontext: edits an input image as the prompt says (or, without one, draws
    from the prompt alone). Unset `aspect_ratio`: the input image's (1:1 without one)."""

    aspect_ratio: FalAspectRatio | None = None
    guidance_scale: float = Field(default=3.5, ge=1.0, le=20.0)
    seed: Seed | None = None
    safety_tolerance: FalSafetyTolerance = 2
    enhance_prompt: bool = False
    output_format: Literal["jpeg", "png"] = "jpeg"


# --- ComfyUI workflows (the `comfyui` provider) ---


class ComfyUIInpaintOptions(PromptOptions):
    """A ComfyUI inpainting workflow: the size is the input image's. `n` images are `n` runs
    of the workflow, the i-th with seed + i."""

    negative_prompt: str = Field(default="", max_length=2000)
    seed: Seed | None = None
    num_steps: int = Field(default=20, ge=1)
    guidance_scale: float = Field(default=3.5, ge=0.0, le=100.0)
    """The workflow's guidance (FLUX's `FluxGuidance`), not the sampler's cfg."""

    @field_validator("num_steps", mode="after")
    @classmethod
    def _steps_ok(cls, value: int, info: ValidationInfo) -> int:
        return _steps_within_limits(value, spec_of(info))


class ComfyUIOptions(ComfyUIInpaintOptions):
    """A ComfyUI text-to-image workflow: width and height the model's multiple in its limits."""

    width: int = 1024
    height: int = 1024

    @field_validator("width", "height", mode="after")
    @classmethod
    def _dimension_ok(cls, value: int, info: ValidationInfo) -> int:
        return _dimension_within_limits(str(info.field_name), value, spec_of(info))

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


# --- upscalers: one input image in, the same picture `factor` times larger out ---

NoiseLevel = Annotated[int, Field(ge=0, le=350)]


def _upscale_factor(value: int | None, spec: ModelSpec) -> int | None:
    """A factor the model enlarges by; none for a model that picks the output size itself."""
    factors = spec.limits.upscale.factors if spec.limits.upscale else ()
    if value is None or value in factors:
        return value
    if not factors:
        raise PydanticCustomError(
            "invalid_factor",
            "Invalid factor: {value}; model '{model}' picks the output size itself (about 4 "
            "megapixels); send no factor",
            {"value": value, "model": spec.id},
        )
    raise PydanticCustomError(
        "invalid_factor",
        "Invalid factor: {value}; allowed: {allowed}",
        {"value": value, "allowed": " or ".join(str(factor) for factor in factors)},
    )


class UpscaleOptions(ImageOptions):
    """Every upscaler: one image per input image, enlarged `factor` times (the model's first
    factor when none is sent)."""

    n: Literal[1] = 1
    factor: int | None = None
    output_format: OutputFormat = "png"

    @model_validator(mode="before")
    @classmethod
    def _default_factor(cls, data: Any, info: ValidationInfo) -> Any:
        upscale = spec_of(info).limits.upscale
        if isinstance(data, dict) and data.get("factor") is None and upscale and upscale.factors:
            return {**data, "factor": upscale.factors[0]}
        return data

    @field_validator("factor", mode="after")
    @classmethod
    def _factor_ok(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _upscale_factor(value, spec_of(info))


class LanczosUpscaleOptions(UpscaleOptions):
    """pixelgate's own upscaler: Lanczos resampling (Pillow), no model, no prompt."""


class DiffusionUpscaleOptions(UpscaleOptions):
    """A local diffusers upscaler (the SD x2 latent upscaler): denoises the enlarged image
    towards the prompt, when one is sent."""

    prompt: str | None = Field(default=None, max_length=2000)
    negative_prompt: str | None = Field(default=None, max_length=2000)
    num_steps: int = Field(default=20, ge=1)
    guidance_scale: float = Field(default=0.0, ge=0.0, le=30.0)
    seed: Seed | None = None

    @field_validator("num_steps", mode="after")
    @classmethod
    def _steps_ok(cls, value: int, info: ValidationInfo) -> int:
        return _steps_within_limits(value, spec_of(info))


class DiffusionX4UpscaleOptions(DiffusionUpscaleOptions):
    """The SD x4 upscaler: also `noise_level`, the noise added to the input first (more lets
    the model invent more detail)."""

    noise_level: NoiseLevel = 20


class StabilityFastUpscaleOptions(UpscaleOptions):
    """Stability's fast upscaler: 4x, no prompt."""


class PromptedUpscaleOptions(UpscaleOptions):
    """An upscaler that needs a prompt describing the image."""

    prompt: str

    @field_validator("prompt")
    @classmethod
    def _prompt_fits(cls, prompt: str, info: ValidationInfo) -> str:
        return _prompt_within_limits(prompt, spec_of(info))


class StabilityConservativeUpscaleOptions(PromptedUpscaleOptions):
    """Stability's conservative upscaler: about 4 megapixels out, changing as little as it can;
    the prompt describes the image."""

    negative_prompt: str | None = Field(default=None, max_length=10000)
    seed: Seed | None = None
    creativity: float | None = Field(default=None, ge=0.2, le=0.5)


class StabilityCreativeUpscaleOptions(PromptedUpscaleOptions):
    """Stability's creative upscaler (asynchronous there): about 4 megapixels out, reimagining
    degraded images as the prompt describes them."""

    negative_prompt: str | None = Field(default=None, max_length=10000)
    seed: Seed | None = None
    creativity: float | None = Field(default=None, ge=0.1, le=0.5)
    style_preset: StabilityStylePreset | None = None


OPTION_FAMILIES: dict[str, type[ImageOptions]] = {
    "dall-e-2": DallE2Options,
    "dall-e-3": DallE3Options,
    "gpt-image": GptImageOptions,
    "stability-core": StabilityCoreOptions,
    "stability-inpaint": StabilityInpaintOptions,
    "stability-outpaint": StabilityOutpaintOptions,
    "stability-search-and-replace": StabilitySearchAndReplaceOptions,
    "stability-erase": StabilityEraseOptions,
    "flux": FluxOptions,
    "flux-kontext": FluxKontextOptions,
    "diffusion": DiffusionOptions,
    "background-removal": BackgroundRemovalOptions,
    "imagen": ImagenOptions,
    "imagen-edit": ImagenEditOptions,
    "openai-compatible": OpenAICompatibleOptions,
    "fal-flux-pro": FalFluxProOptions,
    "fal-flux-ultra": FalFluxUltraOptions,
    "fal-flux-kontext": FalFluxKontextOptions,
    "fal-flux-dev": FalFluxDevOptions,
    "fal-flux-schnell": FalFluxSchnellOptions,
    "comfyui": ComfyUIOptions,
    "comfyui-inpaint": ComfyUIInpaintOptions,
    "lanczos-upscale": LanczosUpscaleOptions,
    "diffusion-upscale": DiffusionUpscaleOptions,
    "diffusion-x4-upscale": DiffusionX4UpscaleOptions,
    "stability-upscale-fast": StabilityFastUpscaleOptions,
    "stability-upscale-conservative": StabilityConservativeUpscaleOptions,
    "stability-upscale-creative": StabilityCreativeUpscaleOptions,
}

VARIATION_OPTIONS: dict[str, type[ImageOptions]] = {"dall-e-2": DallE2VariationOptions}
"""Families whose variations take other options than their other tasks (no prompt)."""


SEED_NAMES: dict[str, str] = {
    "modelName": "model",
    "model_name": "model",
    "numberOfImagesToGenerate": "n",
}
"""Names the product's source documents give fields whose own names are shorter: the SDK's
`modelName` and `numberOfImagesToGenerate`, the serverless API's `model_name`."""


def camel_case(name: str) -> str:
    """`negative_prompt` → `negativePrompt`."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def name_aliases(names: Iterable[str]) -> dict[str, str]:
    """Alias → name, for `names` (request fields and options): each name's camelCase spelling
    (`aspectRatio`, `negativePrompt`, `stylePreset`, `outputFormat`, ...) and the seeds' own
    names (`SEED_NAMES`) of the fields among them."""
    wanted = set(names)
    aliases = {camel_case(name): name for name in wanted if camel_case(name) != name}
    return aliases | {alias: name for alias, name in SEED_NAMES.items() if name in wanted}


def option_names() -> set[str]:
    """Every option some family takes."""
    return {name for family in OPTION_FAMILIES.values() for name in family.model_fields}
