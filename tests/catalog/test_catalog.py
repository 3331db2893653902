from __future__ import annotations

from pathlib import Path

import pytest

from pixelgate.catalog import OPTION_FAMILIES, Catalog, ModelSpec, PromptOptions, TaskKind
from pixelgate.catalog.spec import Capability
from pixelgate.errors import ValidationError
from tests.helpers import REQUIRED_BESIDE_A_PROMPT

PRODUCT_MODELS = {
    "openai/dall-e-2", "openai/dall-e-3", "openai/gpt-image-1", "stability/stable-diffusion-core",
    "bfl/flux-pro-1.1", "bfl/flux-kontext-pro", "stabilityai/stable-diffusion-xl-base-1.0",
    "black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-Fill-dev",
    "stabilityai/sd-turbo", "local/tiny", "pixelgate/shapes",
}  # fmt: skip


def test_the_builtin_catalog_has_the_product_models() -> None:
    assert {spec.id for spec in Catalog.load()} >= PRODUCT_MODELS


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [
        ("dall-e-3", "openai/dall-e-3"),
        ("stable-diffusion-core", "stability/stable-diffusion-core"),
        ("shapes", "pixelgate/shapes"),
    ],
)
def test_aliases_resolve(alias: str, model_id: str) -> None:
    assert Catalog.load().resolve(alias).id == model_id


def test_every_model_accepts_a_bare_prompt_with_its_own_defaults() -> None:
    catalog = Catalog.load()
    for spec in catalog:
        assert spec.family in OPTION_FAMILIES
        if not issubclass(OPTION_FAMILIES[spec.family], PromptOptions):
            continue  # background removal takes no prompt (tests/providers/test_rembg.py)
        needed = REQUIRED_BESIDE_A_PROMPT.get(spec.family, {})
        options = catalog.validate_options(spec, {"prompt": "a cat", **needed})
        assert isinstance(options, PromptOptions) and options.prompt == "a cat"


def test_prices_depend_on_size_and_quality() -> None:
    spec = Catalog.load().resolve("dall-e-3")
    hd_wide = spec.price_per_image(size="1792x1024", quality="hd")
    standard = spec.price_per_image(size="1024x1024", quality="standard")
    assert hd_wide > standard
    assert str(hd_wide) == "0.120"


def test_an_operator_file_adds_and_overrides_models(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text(
        """
[[models]]
id = "local/tiny"
provider = "diffusers"
family = "diffusion"
source = "builtin:tiny"
defaults = { width = 32, height = 32, num_steps = 2, guidance_scale = 1.0 }

[[models]]
id = "acme/painter"
provider = "diffusers"
family = "diffusion"
source = "acme/painter"
aliases = ["painter"]
defaults = { width = 512, height = 512, num_steps = 20, guidance_scale = 7.5 }
"""
    )
    catalog = Catalog.load(extra)
    assert catalog.resolve("painter").id == "acme/painter"
    assert catalog.resolve("local/tiny").defaults["width"] == 32
    assert catalog.resolve("dall-e-3").id == "openai/dall-e-3"


def test_an_unknown_family_is_refused_at_load(tmp_path: Path) -> None:
    extra = tmp_path / "catalog.toml"
    extra.write_text('[[models]]\nid = "x/y"\nprovider = "diffusers"\nfamily = "mystery"\n')
    with pytest.raises(ValueError, match="unknown option family 'mystery'"):
        Catalog.load(extra)


def test_an_unknown_model_names_the_param() -> None:
    with pytest.raises(ValidationError) as caught:
        Catalog.load().resolve("gpt-9")
    assert caught.value.param == "model"
    assert caught.value.message.startswith("Unsupported image model name: 'gpt-9'")


@pytest.mark.parametrize(
    ("capabilities", "kind", "masked", "supported"),
    [
        (("generate",), "generate", False, True),
        (("generate",), "edit", False, False),
        (("edit",), "edit", False, True),
        (("edit",), "edit", True, True),
        (("inpaint",), "edit", True, True),
        (("inpaint",), "edit", False, False),  # an inpainting model needs the mask
        (("variations",), "variation", False, True),
        (("generate", "edit"), "variation", False, False),
        (("remove-background",), "remove-background", False, True),
        (("generate",), "remove-background", False, False),
    ],
)
def test_which_task_a_model_supports_is_one_rule(
    capabilities: tuple[Capability, ...], kind: TaskKind, masked: bool, supported: bool
) -> None:
    spec = ModelSpec(id="m", provider="p", family="diffusion", capabilities=capabilities)

    assert spec.supports(kind, masked=masked) is supported
