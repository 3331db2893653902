"""`size` and `quality` for every model of the shipped catalog: translated into each family's
own options, with the adjustments the result shows, or refused naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from pixelgate.catalog import OPTION_FAMILIES, Catalog
from pixelgate.errors import ValidationError
from pixelgate.service.edit_sizes import plan_aspect_ratio
from pixelgate.service.portable_options import PortableOptions, portable_options
from tests.helpers import REQUIRED_BESIDE_A_PROMPT

CATALOG = Catalog.load()


def translate(model: str, **options: Any) -> PortableOptions:
    spec = CATALOG.resolve(model)
    return portable_options(spec, OPTION_FAMILIES[spec.family], options)


def refusal(model: str, **options: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        translate(model, **options)
    return caught.value


def test_every_prompted_model_takes_the_gateway_body() -> None:
    """The gateway body's size and quality translate for every model that draws from a prompt,
    and what they become passes the model's own option family."""
    for spec in CATALOG:
        if "prompt" not in OPTION_FAMILIES[spec.family].model_fields:
            continue
        family = OPTION_FAMILIES[spec.family]
        needed = REQUIRED_BESIDE_A_PROMPT.get(spec.family, {})
        translated = translate(
            spec.id, prompt="a lighthouse", size="1024x1024", quality="hd", **needed
        )
        mapped, _ = plan_aspect_ratio(spec, family, translated.options)  # as the service does
        assert CATALOG.validate_options(spec, mapped).n == 1, spec.id


def test_a_local_model_gets_the_nearest_size_it_takes_and_says_so() -> None:
    translated = translate("local/tiny", size="1024x768")

    assert translated.options == {"width": 256, "height": 192}
    assert [a.to_json() for a in translated.adjustments] == [
        {
            "param": "size",
            "from": "1024x768",
            "to": "256x192",
            "reason": "local/tiny takes sizes that are multiples of 8 in [32, 256]: the nearest "
            "it takes",
        }
    ]


def test_a_size_the_model_takes_is_used_silently() -> None:
    assert translate("local/tiny", size="96x32") == PortableOptions({"width": 96, "height": 32})
    assert translate("local/tiny", size="auto") == PortableOptions({})


def test_flux_sizes_fit_black_forest_labs_rule_not_the_catalogs() -> None:
    translated = translate("flux-pro-1.1", size="1000x100")

    assert translated.options == {"width": 1440, "height": 256}
    assert translated.adjustments[0].reason.endswith("multiples of 32 in [256, 1440]: the "
                                                        "nearest it takes")  # fmt: skip


def test_an_aspect_ratio_model_gets_the_width_and_height_to_map() -> None:
    # edit_sizes.plan_aspect_ratio maps them to its nearest ratio, and says so
    assert translate("stable-image-core", size="1920x1080").options == {
        "width": 1920,
        "height": 1080,
    }


def test_a_model_of_listed_sizes_checks_its_own_list() -> None:
    assert translate("dall-e-3", size="1792x1024").options == {"size": "1792x1024"}
    assert translate("dall-e-3", size="auto").options == {}  # dall-e-3 has no auto: its default
    assert translate("gpt-image-1", size="auto").options == {"size": "auto"}


def test_quality_becomes_a_local_models_steps() -> None:
    high = translate("local/tiny", quality="hd")
    low = translate("pixelgate/shapes", quality="low")

    assert high.options == {"num_steps": 8}  # twice its 4 default steps
    assert [a.to_json() for a in high.adjustments] == [
        {
            "param": "quality",
            "from": "hd",
            "to": "num_steps=8",
            "reason": "local/tiny has no quality setting: hd runs 8 steps, not 4",
        }
    ]
    assert low.options == {"num_steps": 10}  # half of 20
    assert translate("local/tiny", quality="standard") == PortableOptions({})
    assert translate("local/tiny", quality="auto") == PortableOptions({})
    assert translate("sd-turbo", quality="low").options == {"num_steps": 1}  # at least one


def test_quality_becomes_a_hosted_models_own_value() -> None:
    assert translate("dall-e-3", quality="high").options == {"quality": "hd"}
    assert translate("dall-e-3", quality="hd") == PortableOptions({"quality": "hd"})
    gpt = translate("gpt-image-1", quality="hd")
    assert gpt.options == {"quality": "high"}
    assert gpt.adjustments[0].reason == (
        "openai/gpt-image-1 names its qualities auto, low, medium, high"
    )
    assert translate("gpt-image-1", quality="standard").options == {"quality": "medium"}


def test_quality_is_ignored_with_a_note_where_a_model_has_none() -> None:
    translated = translate("flux-pro-1.1", quality="hd")

    assert translated.options == {}
    assert [a.to_json() for a in translated.adjustments] == [
        {
            "param": "quality",
            "from": "hd",
            "to": "ignored",
            "reason": "bfl/flux-pro-1.1 has no quality setting; it draws at its one quality",
        }
    ]
    assert translate("stable-image-core", quality="standard") == PortableOptions({})


@pytest.mark.parametrize(
    ("model", "options", "param", "message"),
    [
        (
            "local/tiny",
            {"size": "big"},
            "size",
            "Invalid size 'big': expected WIDTHxHEIGHT (such as 512x512) or auto",
        ),
        (
            "local/tiny",
            {"size": 512},
            "size",
            "Invalid size 512: expected WIDTHxHEIGHT (such as 512x512) or auto",
        ),
        (
            "local/tiny",
            {"size": "0x64"},
            "size",
            "Invalid size '0x64': expected WIDTHxHEIGHT (such as 512x512) or auto",
        ),
        (
            "local/tiny",
            {"size": "64x64", "width": 64},
            "width",
            "width is also set by size; send one",
        ),
        (
            "stable-image-core",
            {"size": "64x64", "aspect_ratio": "1:1"},
            "aspect_ratio",
            "aspect_ratio is also set by size; send one",
        ),
        (
            "u2netp",
            {"size": "64x64"},
            "size",
            "Invalid size '64x64': model 'rembg/u2netp' takes no size",
        ),
        (
            "local/tiny",
            {"quality": "ultra"},
            "quality",
            "Invalid quality: 'ultra'; allowed: auto, low, medium, standard, high, hd",
        ),
        (
            "dall-e-3",
            {"quality": "best"},
            "quality",
            "Invalid quality: 'best'; allowed: standard, hd, auto, low, medium, high",
        ),
        (
            "local/tiny",
            {"quality": "hd", "num_steps": 2},
            "num_steps",
            "num_steps is also set by quality; send one",
        ),
    ],
)
def test_bad_values_name_the_parameter_and_what_is_allowed(
    model: str, options: dict[str, Any], param: str, message: str
) -> None:
    error = refusal(model, **options)

    assert (error.param, error.message) == (param, message)


def test_standard_quality_beside_explicit_steps_asks_for_nothing() -> None:
    assert translate("local/tiny", quality="standard", num_steps=2) == PortableOptions(
        {"num_steps": 2}
    )


def test_null_is_unset_as_for_every_option() -> None:
    assert translate("local/tiny", size=None, quality=None) == PortableOptions({})


def test_size_is_ignored_with_a_note_where_the_input_image_sets_it() -> None:
    translated = translate("imagen3-edit", prompt="a lighthouse", size="1024x1024")

    assert translated.options == {"prompt": "a lighthouse"}
    assert [a.to_json() for a in translated.adjustments] == [
        {
            "param": "size",
            "from": "1024x1024",
            "to": "ignored",
            "reason": "google/imagen-3-edit takes no size: its image's size follows from the "
            "input image",
        }
    ]
    assert refusal("imagen3-edit", size="big").param == "size"
