from __future__ import annotations

import pytest

from pixelgate.catalog import Catalog, DiffusionOptions
from pixelgate.catalog.options import DallE3Options, FluxOptions
from pixelgate.errors import ValidationError

CATALOG = Catalog.load()


def validate(model: str, **raw: object) -> object:
    return CATALOG.validate_options(CATALOG.resolve(model), {"prompt": "x", **raw})


def test_dall_e_3_defaults() -> None:
    options = validate("dall-e-3")
    assert isinstance(options, DallE3Options)
    assert (options.size, options.quality, options.n) == ("1024x1024", "standard", 1)


@pytest.mark.parametrize("value", [256, 288, 1024, 1440])
def test_flux_accepts_multiples_of_32_in_range(value: int) -> None:
    options = validate("flux-pro-1.1", width=value, height=value)
    assert isinstance(options, FluxOptions)
    assert options.width == value


def test_flux_defaults_are_1024_by_768() -> None:
    options = validate("flux-pro-1.1")
    assert isinstance(options, FluxOptions)
    assert (options.width, options.height) == (1024, 768)


def test_local_defaults_come_from_the_catalog_and_are_validated() -> None:
    options = validate("local/tiny")
    assert isinstance(options, DiffusionOptions)
    assert (options.width, options.height, options.num_steps) == (64, 64, 4)
    assert options.size == "64x64"


def test_a_null_option_takes_the_default() -> None:
    options = validate("local/tiny", width=None, seed=None)
    assert isinstance(options, DiffusionOptions)
    assert options.width == 64 and options.seed is None


def test_with_seed_fixes_the_seed() -> None:
    options = validate("local/tiny")
    assert options.with_seed(9).seed_value == 9  # type: ignore[attr-defined]


def test_booleans_are_not_integers_for_safety_tolerance() -> None:
    with pytest.raises(ValidationError, match="Invalid safety tolerance"):
        validate("flux-pro-1.1", safety_tolerance=True)


def test_kontext_aspect_ratio_is_bounded() -> None:
    validate("flux-kontext-pro", aspect_ratio="21:9")
    with pytest.raises(ValidationError, match="Invalid aspect ratio: 9:1"):
        validate("flux-kontext-pro", aspect_ratio="9:1")
