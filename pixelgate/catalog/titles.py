"""Plain-words titles, units and help for the options of every family, for people choosing them.

Options keep one name across families (`seed`, `width`, `output_format`), so their words are kept
here once by name and written into each family's JSON Schema: `title`, `description` and, where
the value has a unit, `x-unit`. `GET /v1/models` serves that schema, and forms (the web page,
Swagger UI) label their fields from it."""

from __future__ import annotations

from typing import Any, NamedTuple

from pixelgate.catalog.options import OPTION_FAMILIES


class OptionWords(NamedTuple):
    title: str
    description: str
    unit: str | None = None


OPTION_WORDS: dict[str, OptionWords] = {
    "prompt": OptionWords("Prompt", "What to draw, in words."),
    "user": OptionWords("End user", "Who the image is for, as your application names them."),
    "n": OptionWords("Number of images", "How many images one request makes.", "images"),
    "size": OptionWords("Size", "Width by height.", "px"),
    "width": OptionWords("Width", "The image's width.", "px"),
    "height": OptionWords("Height", "The image's height.", "px"),
    "aspect_ratio": OptionWords("Aspect ratio", "Width to height, as W:H."),
    "quality": OptionWords("Quality", "Higher quality takes longer and may cost more."),
    "style": OptionWords("Style", "Vivid leans dramatic; natural, more realistic."),
    "style_preset": OptionWords("Style preset", "A look the model steers the image towards."),
    "background": OptionWords("Background", "Transparent keeps only the subject."),
    "output_format": OptionWords("File format", "The format of the image files."),
    "negative_prompt": OptionWords("Avoid", "What the image should not show, in words."),
    "seed": OptionWords(
        "Seed", "The same seed, prompt and options draw the same image; empty picks one."
    ),
    "num_steps": OptionWords("Steps", "More denoising steps add detail and take longer.", "steps"),
    "guidance_scale": OptionWords(
        "Prompt strength", "How closely the image follows the prompt; 0 ignores it."
    ),
    "strength": OptionWords(
        "Change", "How far the edit moves from the input image: 1 repaints it fully.", "0 to 1"
    ),
    "prompt_upsampling": OptionWords(
        "Improve the prompt", "The provider rewrites the prompt with more detail first."
    ),
    "safety_tolerance": OptionWords(
        "Safety tolerance", "1 is the strictest moderation; higher is more permissive."
    ),
    "safety_setting": OptionWords(
        "Safety filter", "How much the provider's filter blocks, from low-risk content up."
    ),
    "enable_safety_checker": OptionWords(
        "Safety checker", "The provider withholds images its checker flags."
    ),
    "person_generation": OptionWords("People", "Whether the image may show people, and whom."),
    "add_watermark": OptionWords(
        "Invisible watermark", "Marks the image as AI-made; a watermarked image takes no seed."
    ),
    "enhance_prompt": OptionWords(
        "Improve the prompt", "The provider rewrites the prompt with more detail first."
    ),
    "raw": OptionWords("Raw look", "Less processed, more natural-looking images."),
    "image_size": OptionWords("Size preset", "One of the provider's named sizes."),
    "edit_mode": OptionWords(
        "Edit", "Insert or remove what the prompt names, extend the image, or swap its background."
    ),
    "mask_mode": OptionWords(
        "Mask", "Your own mask, or one the model computes from the background or foreground."
    ),
    "mask_dilation": OptionWords(
        "Mask growth", "How far the mask grows, as a share of the image's width.", "0 to 1"
    ),
    "base_steps": OptionWords(
        "Steps", "Sampling steps; empty uses the model's own default.", "steps"
    ),
    "grow_mask": OptionWords(
        "Mask growth", "How far the mask's edges grow, to blend the edit in.", "px"
    ),
    "search_prompt": OptionWords("Find", "What to find in the image and replace, in words."),
    "left": OptionWords("Extend left", "Pixels to add on the left.", "px"),
    "right": OptionWords("Extend right", "Pixels to add on the right.", "px"),
    "up": OptionWords("Extend up", "Pixels to add at the top.", "px"),
    "down": OptionWords("Extend down", "Pixels to add at the bottom.", "px"),
    "creativity": OptionWords(
        "Creativity", "How freely the added parts are invented: 1 is the most.", "0 to 1"
    ),
    "factor": OptionWords("Enlarge by", "How many times wider and taller the image becomes.", "x"),
    "noise_level": OptionWords(
        "Added noise", "Noise added to the input first: more lets the model invent more detail."
    ),
}


def options_schema(family: str) -> dict[str, Any]:
    """The JSON Schema of a family's options, each property titled and described in plain
    words (a name without words keeps pydantic's title)."""
    schema = OPTION_FAMILIES[family].model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        words = OPTION_WORDS.get(name)
        if words is None:
            continue
        prop["title"] = words.title
        prop["description"] = words.description
        if words.unit:
            prop["x-unit"] = words.unit
    return schema
