"""`size` and `quality` on every model, each translated into the model's own options.

The product's gateway body (`model`, `prompt`, `n`, `size`, `quality`, ...) works with any model,
on every surface, and the result's `adjustments` say what the model got when it differs:

- `size` (`WxH`, or `auto` for the model's default). A family that takes `size` (dall-e,
  gpt-image) checks it against its own list. A family of widths and heights gets the nearest
  width and height its limits allow, aspect kept. A family of aspect ratios gets the width and
  height, which `edit_sizes.plan_aspect_ratio` maps to its nearest ratio. Any other refuses it.
- `quality` (`auto`, `low`, `medium` or `standard`, `high` or `hd`). A family with its own
  `quality` takes its own values as they are and the others mapped to its nearest (gpt-image's
  `high` for `hd`). Local diffusion runs half its default steps for `low`, twice for `high`
  (within `max_steps`). Any other model has no such setting: `low` and `high` are ignored, and
  the result says so. `auto`, `medium` and `standard` ask for the model's default.
- `prompt` on an edit model or an upscaler that draws from none (Stability's erase, the Lanczos
  upscaler): ignored, and the result says so, so that the gateway body (and OpenAI's edits,
  where a prompt is required) work with it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from pixelgate.catalog import ImageOptions, ModelSpec, TaskKind
from pixelgate.db.job_records import Adjustment
from pixelgate.errors import ValidationError
from pixelgate.service.edit_sizes import adjustment, fit_size

LEVELS: dict[str, str] = {
    "low": "low",
    "medium": "standard",
    "standard": "standard",
    "high": "high",
    "hd": "high",
}
"""Each portable quality value → its level (`auto` is the model's own choice)."""

OWN_VALUES: dict[str, tuple[str, ...]] = {
    "low": ("low", "standard", "medium"),
    "standard": ("standard", "medium", "auto"),
    "high": ("high", "hd"),
}
"""A level's values in a family's own `quality`, preferred first."""

IGNORED_PROMPT: dict[TaskKind, str] = {
    "edit": "it fills the masked area from the image itself",
    "upscale": "it enlarges the image as it is",
}
"""Tasks whose models may take no prompt, where a prompt sent is ignored (and why)."""

STEP_SCALE: dict[str, float] = {"low": 0.5, "standard": 1.0, "high": 2.0}
"""A level as a multiple of a local model's default steps."""


@dataclass
class PortableOptions:
    options: dict[str, Any]
    adjustments: list[Adjustment] = field(default_factory=list)
    """What was translated, as the result's `adjustments` show it."""


def portable_options(
    spec: ModelSpec,
    family: type[ImageOptions],
    raw: Mapping[str, Any],
    *,
    task: TaskKind = "generate",
) -> PortableOptions:
    """`raw` with `size` and `quality` translated for the model, and for an edit or an
    upscale, a prompt the model takes none of set aside (options without them are returned as
    they are; null is unset, as for every option)."""
    result = PortableOptions(
        {k: v for k, v in raw.items() if v is not None or k not in ("size", "quality")}
    )
    sent, fields = result.options, family.model_fields
    if task in IGNORED_PROMPT and "prompt" not in fields and sent.get("prompt") is not None:
        reason = f"{spec.id} takes no prompt: {IGNORED_PROMPT[task]}"
        result.adjustments.append(_changed("prompt", str(sent.pop("prompt")), "ignored", reason))
    if "size" in sent and task == "upscale":
        raise ValidationError(
            f"Invalid size {sent['size']!r}: model {spec.id!r} takes no size; an upscaled "
            "image is the input's size times `factor`",
            param="size",
        )
    if "size" in sent and "size" not in fields:
        _translate_size(spec, family, result, edit=task == "edit")
    elif sent.get("size") == "auto" and "auto" not in _literals(fields["size"].annotation):
        del sent["size"]
    if "quality" in sent:
        _translate_quality(spec, family, result)
    return result


def parse_size(size: Any) -> tuple[int, int] | None:
    """`WxH` as two positive integers; None for `auto`. Anything else is refused, naming
    `size`."""
    if size == "auto":
        return None
    width, _, height = str(size).partition("x")
    digits = all(part.isascii() and part.isdigit() and len(part) <= 9 for part in (width, height))
    if not (isinstance(size, str) and digits and int(width) > 0 and int(height) > 0):
        raise ValidationError(
            f"Invalid size {size!r}: expected WIDTHxHEIGHT (such as 512x512) or auto",
            param="size",
        )
    return int(width), int(height)


def _translate_size(
    spec: ModelSpec, family: type[ImageOptions], result: PortableOptions, *, edit: bool
) -> None:
    fields, options = family.model_fields, result.options
    size = options.pop("size")
    takes_dimensions = "width" in fields and "height" in fields
    requested = parse_size(size)
    if not takes_dimensions and "aspect_ratio" not in fields:
        if "prompt" not in fields and not edit:
            raise ValidationError(
                f"Invalid size {size!r}: model {spec.id!r} takes no size", param="size"
            )
        # an edit whose output's size follows from its input image: the gateway body still works
        if requested is not None:
            reason = f"{spec.id} takes no size: its image's size follows from the input image"
            result.adjustments.append(_changed("size", size, "ignored", reason))
        return
    for name in ("width", "height", "aspect_ratio"):
        if options.get(name) is not None:
            raise ValidationError(f"{name} is also set by size; send one", param=name)
    if requested is None:
        return
    if not takes_dimensions:
        # a family of aspect ratios maps the width and height itself, as for a native request
        options["width"], options["height"] = requested
        return
    limits = family.dimension_limits(spec)
    fitted = fit_size(limits, *requested)
    options["width"], options["height"] = fitted
    if fitted != requested:
        reason = (
            f"{spec.id} takes sizes that are multiples of {limits.size_multiple} in "
            f"[{limits.min_size}, {limits.max_size}]: the nearest it takes"
        )
        result.adjustments.append(adjustment("size", requested, fitted, reason))


def _translate_quality(
    spec: ModelSpec, family: type[ImageOptions], result: PortableOptions
) -> None:
    fields, options = family.model_fields, result.options
    quality = options["quality"]
    own = _literals(fields["quality"].annotation) if "quality" in fields else ()
    if quality in own:
        return
    level = LEVELS.get(quality) if isinstance(quality, str) else None
    if level is None and quality != "auto":
        allowed = ", ".join(dict.fromkeys((*own, "auto", *LEVELS)))
        raise ValidationError(f"Invalid quality: {quality!r}; allowed: {allowed}", param="quality")
    del options["quality"]
    if level is None:
        return  # auto: the model's own choice
    if own:
        value = next((v for v in OWN_VALUES[level] if v in own), None)
        if value is not None:
            options["quality"] = value
            reason = f"{spec.id} names its qualities {', '.join(own)}"
            result.adjustments.append(_changed("quality", quality, value, reason))
            return
    elif "num_steps" in fields and "num_steps" in spec.defaults:
        if level == "standard":
            return  # the model's default steps, or those sent
        if options.get("num_steps") is not None:
            raise ValidationError("num_steps is also set by quality; send one", param="num_steps")
        default = int(spec.defaults["num_steps"])
        steps = min(spec.limits.max_steps, max(1, round(default * STEP_SCALE[level])))
        options["num_steps"] = steps
        reason = f"{spec.id} has no quality setting: {quality} runs {steps} steps, not {default}"
        result.adjustments.append(_changed("quality", quality, f"num_steps={steps}", reason))
        return
    if level != "standard":
        reason = f"{spec.id} has no quality setting; it draws at its one quality"
        result.adjustments.append(_changed("quality", quality, "ignored", reason))


def _changed(param: str, sent: str, used: str, reason: str) -> Adjustment:
    return Adjustment(param, sent, used, reason)


def _literals(annotation: Any) -> tuple[str, ...]:
    """The text values a `Literal[...]` field (optional or not) allows."""
    values: list[str] = []
    for arg in get_args(annotation):
        if isinstance(arg, str):
            values.append(arg)
        else:
            values.extend(_literals(arg))
    return tuple(values)
