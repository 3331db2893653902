"""What an upscaler takes: the input's sides, pixels and multiple (`limits.upscale`)."""

from __future__ import annotations

import pytest

from pixelgate.catalog import ModelSpec
from pixelgate.errors import ValidationError
from pixelgate.service.upscale_sizes import upscale_input_size


def upscaler(**limits: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": "test/up",
            "provider": "lanczos",
            "family": "lanczos-upscale",
            "capabilities": ["upscale"],
            "limits": {"upscale": {"factors": [2, 4], **limits}},
        }
    )


def test_an_input_within_the_limits_is_taken_as_it_is() -> None:
    assert upscale_input_size(upscaler(max_side=100), (100, 7), 4) == (100, 7)


def test_an_input_off_the_multiple_is_brought_down_to_it() -> None:
    assert upscale_input_size(upscaler(multiple=8), (36, 29), 4) == (32, 24)


@pytest.mark.parametrize(
    ("limits", "size", "message"),
    [
        ({"max_side": 100}, (101, 10), "The image is 101x10; model 'test/up' upscales images "
         "of at most 100 px a side (it makes 4x that). Send a smaller image"),
        ({"min_side": 32}, (31, 64), "at least 32 px a side"),
        ({"max_pixels": 1000}, (40, 30), "The image is 40x30 (1200 pixels); model 'test/up' "
         "upscales images of at most 1000 pixels"),
        ({"multiple": 64}, (63, 200), "multiples of 64 px, at least 64 px"),
    ],
)  # fmt: skip
def test_an_input_the_model_cannot_take_is_refused_naming_the_image(
    limits: dict[str, int], size: tuple[int, int], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        upscale_input_size(upscaler(**limits), size, 4)

    assert refused.value.param == "image"
    assert message in refused.value.message
