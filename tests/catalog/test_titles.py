"""Every option of every family has plain words, and the schema `GET /v1/models` serves
carries them."""

from __future__ import annotations

from pixelgate.catalog.options import OPTION_FAMILIES
from pixelgate.catalog.titles import OPTION_WORDS, options_schema


def test_every_option_of_every_family_has_words() -> None:
    names = {name for family in OPTION_FAMILIES.values() for name in family.model_fields}
    assert names - set(OPTION_WORDS) == set()


def test_the_schema_carries_titles_descriptions_and_units() -> None:
    properties = options_schema("diffusion")["properties"]
    assert properties["num_steps"]["title"] == "Steps"
    assert properties["num_steps"]["x-unit"] == "steps"
    assert properties["width"]["x-unit"] == "px"
    assert properties["seed"]["description"].startswith("The same seed")
    assert "x-unit" not in properties["output_format"]
    assert properties["num_steps"]["minimum"] == 1  # the rules stay as pydantic wrote them
