"""The size an edit is made at, and what was resized or mapped to get there.

A local model edits at one width and height that fit its limits (a multiple of
`size_multiple`, within `min_size` and `max_size`). When the caller's input image does not fit,
a requested width and height are not a multiple, or the mask differs from the image, pixelgate
resizes them and says so in the result. A model that takes an aspect ratio instead of a width
and height (FLUX Kontext, Stable Image Core) gets the nearest ratio it takes. The adjustments
are kept with the job's inputs (`JobInputs.adjustments`), so every view of the job shows them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, get_args

from pixelgate.catalog import ImageOptions, ModelSpec
from pixelgate.catalog.spec import Limits
from pixelgate.db.job_records import Adjustment, JobInputs
from pixelgate.errors import ValidationError

RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")
"""The aspect ratios offered to a model that takes any ratio (FLUX Kontext)."""


def fit_size(limits: Limits, width: int, height: int) -> tuple[int, int]:
    """The nearest size to `width` x `height` (aspect kept) that the model accepts."""
    scale = 1.0
    if max(width, height) > limits.max_size:
        scale = limits.max_size / max(width, height)
    elif min(width, height) < limits.min_size:
        scale = min(limits.min_size / min(width, height), limits.max_size / max(width, height))
    multiple = limits.size_multiple
    low = -(-limits.min_size // multiple) * multiple
    high = limits.max_size // multiple * multiple

    def snap(value: float) -> int:
        return min(high, max(low, round(value / multiple) * multiple))

    return snap(width * scale), snap(height * scale)


def adjustment(param: str, old: tuple[int, int], new: tuple[int, int], reason: str) -> Adjustment:
    return Adjustment(param, f"{old[0]}x{old[1]}", f"{new[0]}x{new[1]}", reason)


def plan_edit(
    spec: ModelSpec, raw_options: Mapping[str, Any], inputs: JobInputs
) -> tuple[dict[str, Any], JobInputs]:
    """The options with the edit's width and height, and the inputs with their adjustments.

    The output follows the input image: its own size when the model accepts it, else the
    nearest size that it does. A `width` and `height` the caller sent win (rounded to the
    model's multiple first by `plan_requested_size`). A mask of another size than the image is
    resized to the output size."""
    assert inputs.image is not None
    source = inputs.image.size
    requested = raw_options.get("width"), raw_options.get("height")
    if isinstance(requested[0], int) and isinstance(requested[1], int):
        target = (requested[0], requested[1])
        reason = "resized to the requested width and height"
    else:
        target = fit_size(spec.limits, *source)
        reason = (
            f"{spec.id} takes sizes that are multiples of {spec.limits.size_multiple} "
            f"in [{spec.limits.min_size}, {spec.limits.max_size}]"
        )
    planned = inputs
    if target != source:
        image = replace(inputs.image, adjustment=adjustment("image", source, target, reason))
        planned = replace(planned, image=image)
    mask = inputs.mask
    if mask is not None and mask.size != source:
        change = adjustment("mask", mask.size, target, "the mask is resized to the image's size")
        planned = replace(planned, mask=replace(mask, adjustment=change))
    options = {**raw_options, "width": target[0], "height": target[1]}
    return options, planned


def plan_requested_size(
    spec: ModelSpec, family: type[ImageOptions], raw_options: Mapping[str, Any]
) -> tuple[dict[str, Any], Adjustment | None]:
    """An edit's requested `width` and `height` within the model's range but off its multiple
    (FLUX Fill's 16): the options rounded to the nearest multiple, and the adjustment that says
    so (None when nothing was rounded)."""
    width, height = raw_options.get("width"), raw_options.get("height")
    if "width" not in family.model_fields or not (_is_int(width) and _is_int(height)):
        return dict(raw_options), None
    assert isinstance(width, int) and isinstance(height, int)
    target = (_snap(spec.limits, width), _snap(spec.limits, height))
    if target == (width, height):
        return dict(raw_options), None
    change = adjustment(
        "size",
        (width, height),
        target,
        f"{spec.id} takes sizes that are multiples of {spec.limits.size_multiple}; the "
        "requested width and height are rounded to the nearest",
    )
    return {**raw_options, "width": target[0], "height": target[1]}, change


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _snap(limits: Limits, value: int) -> int:
    """A requested dimension within the model's range, rounded to its multiple; one outside the
    range is left for the option family to refuse."""
    if not limits.min_size <= value <= limits.max_size:
        return value
    multiple = limits.size_multiple
    low = -(-limits.min_size // multiple) * multiple
    high = limits.max_size // multiple * multiple
    return min(high, max(low, round(value / multiple) * multiple))


def plan_aspect_ratio(
    spec: ModelSpec, family: type[ImageOptions], raw_options: Mapping[str, Any]
) -> tuple[dict[str, Any], Adjustment | None]:
    """A `width` and `height` sent to a model that takes an `aspect_ratio` instead: the options
    with the nearest ratio the model takes, and the adjustment that says so (None when there
    was nothing to map)."""
    fields = family.model_fields
    if "width" in fields or "aspect_ratio" not in fields:
        return dict(raw_options), None
    if "width" not in raw_options and "height" not in raw_options:
        return dict(raw_options), None
    width, height = raw_options.get("width"), raw_options.get("height")
    if raw_options.get("aspect_ratio") is not None:
        raise ValidationError(
            f"Model {spec.id!r} takes aspect_ratio or width and height, not both; send one",
            param="width",
        )
    for name, value in (("width", width), ("height", height)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise ValidationError(
                f"Invalid {name}: {value!r}; model {spec.id!r} maps a positive width and height "
                "to its nearest aspect ratio (or send aspect_ratio)",
                param=name,
            )
    assert isinstance(width, int) and isinstance(height, int)
    ratio = nearest_ratio(width / height, _ratios(fields["aspect_ratio"].annotation))
    options = {k: v for k, v in raw_options.items() if k not in ("width", "height")}
    options["aspect_ratio"] = ratio
    change = Adjustment(
        "size",
        f"{width}x{height}",
        ratio,
        f"{spec.id} takes an aspect ratio, not a width and height: the nearest it takes",
    )
    return options, change


def nearest_ratio(value: float, ratios: Sequence[str]) -> str:
    """The ratio `W:H` of `ratios` closest to `value` (by how many times bigger or smaller)."""

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(value * int(h) / int(w)))

    return min(ratios, key=distance)


def _ratios(annotation: Any) -> tuple[str, ...]:
    """The ratios a family's `aspect_ratio` field allows: its literal values, else `RATIOS`."""
    # an optional aspect ratio's annotation is `Literal[...] | None`: its literal's values
    args = [value for arg in get_args(annotation) for value in (get_args(arg) or (arg,))]
    values = tuple(arg for arg in args if isinstance(arg, str))
    return values or RATIOS


def with_option_adjustment(inputs: JobInputs, change: Adjustment | None) -> JobInputs:
    """`inputs` with one more option adjustment recorded, when there is one."""
    if change is None:
        return inputs
    return replace(inputs, option_adjustments=(*inputs.option_adjustments, change))
