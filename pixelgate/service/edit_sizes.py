"""The size an edit is made at, and what was resized to get there.

A local model edits at one width and height that fit its limits (a multiple of
`size_multiple`, within `min_size` and `max_size`). When the caller's input image does not fit,
or the mask differs from the image, pixelgate resizes them and says so in the result: the
adjustments are kept with the job's inputs, so every view of the job shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pixelgate.catalog import ModelSpec
from pixelgate.catalog.spec import Limits

ADJUSTMENT_KEY = "adjustment"
"""Where an input's record keeps how it was resized."""


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


def adjustment(
    param: str, old: tuple[int, int], new: tuple[int, int], reason: str
) -> dict[str, str]:
    return {
        "param": param,
        "from": f"{old[0]}x{old[1]}",
        "to": f"{new[0]}x{new[1]}",
        "reason": reason,
    }


def plan_edit(
    spec: ModelSpec, raw_options: Mapping[str, Any], inputs: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The options with the edit's width and height, and the inputs with their adjustments.

    The output follows the input image: its own size when the model accepts it, else the
    nearest size that it does. A `width` and `height` the caller sent win. A mask of another
    size than the image is resized to the output size."""
    image = inputs["image"]
    source = (int(image["width"]), int(image["height"]))
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
    planned = {role: dict(record) for role, record in inputs.items()}
    if target != source:
        planned["image"][ADJUSTMENT_KEY] = adjustment("image", source, target, reason)
    mask = planned.get("mask")
    if mask is not None:
        mask_size = (int(mask["width"]), int(mask["height"]))
        if mask_size != source:
            mask[ADJUSTMENT_KEY] = adjustment(
                "mask", mask_size, target, "the mask is resized to the image's size"
            )
    options = {**raw_options, "width": target[0], "height": target[1]}
    return options, planned


def adjustments_of(inputs: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The adjustments recorded with a job's inputs, image first."""
    found = []
    for role in ("image", "mask"):
        record = (inputs or {}).get(role)
        if isinstance(record, dict) and ADJUSTMENT_KEY in record:
            found.append(record[ADJUSTMENT_KEY])
    return found
