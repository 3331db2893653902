"""`pixelgate/shapes` through the HTTP API, judged by what its pictures mean.

The checker (`pixelgate.shapes.score`, no learned model) reads each image back: these tests
fail when a prompt, a seed, a mask, a strength, a guidance scale or a negative prompt does not
reach the model, not only when bytes change.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import httpx
import pytest
from PIL import Image

from pixelgate.shapes import (
    Scene,
    Thing,
    judge,
    parse_caption,
    read_image,
    render,
    score,
    training_example,
)
from tests.helpers import GENERATE

MODEL = "pixelgate/shapes"
EDIT = "/v1/inference/images/edit"


@pytest.fixture
def shapes_api(api: httpx.Client) -> httpx.Client:
    # every request runs the model: a result must come from its own work, not the cache
    api.headers["Cache-Control"] = "no-cache"
    return api


def images(response: httpx.Response) -> list[Image.Image]:
    assert response.status_code == 200, response.text
    return [
        Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).convert("RGB")
        for item in response.json()["data"]["data"]
    ]


def draw(api: httpx.Client, prompt: str, **options: Any) -> list[Image.Image]:
    body = {"model": MODEL, "prompt": prompt, "response_format": "b64_json", **options}
    return images(api.post(GENERATE, json=body))


def redraw(api: httpx.Client, prompt: str, source: Image.Image, **options: Any) -> Image.Image:
    body = {
        "model": MODEL,
        "prompt": prompt,
        "input_image": png_b64(source),
        "response_format": "b64_json",
        **options,
    }
    return images(api.post(EDIT, json=body))[0]


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pass_rate(pictures: list[Image.Image], caption: str) -> float:
    return sum(score(picture, caption).passed for picture in pictures) / len(pictures)


def test_a_red_circle_on_a_white_background_is_drawn_as_asked(shapes_api: httpx.Client) -> None:
    caption = "a red circle on a white background"
    pictures = draw(shapes_api, caption, seed=0, n=4)

    assert pass_rate(pictures, caption) >= 0.75, [read_image(p) for p in pictures]


def test_the_same_seed_gives_the_same_picture(shapes_api: httpx.Client) -> None:
    caption = "a big blue square above a small yellow triangle on black"
    first = draw(shapes_api, caption, seed=11)[0]
    again = draw(shapes_api, caption, seed=11)[0]
    other = draw(shapes_api, caption, seed=12)[0]

    assert first.tobytes() == again.tobytes()
    assert other.tobytes() != first.tobytes()


def test_inpainting_a_blue_square_changes_only_the_masked_left_half(
    shapes_api: httpx.Client,
) -> None:
    circle = Thing("red", "circle", "big", x=0.75, y=0.5, extent=0.34)
    source = render(Scene("white", (circle,)))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # white repaints the left half; black keeps the right

    caption = "a blue square to the left of a red circle on a white background"
    results = [
        redraw(shapes_api, caption, source, mask_image=png_b64(mask), seed=seed)
        for seed in range(3)
    ]

    kept = (32, 0, 64, 64)
    for result in results:
        assert result.crop(kept).tobytes() == source.crop(kept).tobytes()
    squares = [
        [
            seen
            for seen in read_image(result).objects
            if seen.colour == "blue" and seen.shape == "square"
        ]
        for result in results
    ]
    drawn = [found for found in squares if len(found) == 1 and found[0].x < 0.5]
    assert len(drawn) >= 2, [read_image(result) for result in results]


def keeps_layout(image: Image.Image, scene: Scene) -> bool:
    """The image has the scene's background and as many objects, each within a tenth of the
    side of where one of the scene's objects was (colours and shapes may follow the prompt)."""
    reading = read_image(image)
    return (
        reading.background == scene.background
        and len(reading.objects) == len(scene.things)
        and all(
            any(math.dist((seen.x, seen.y), (thing.x, thing.y)) <= 0.1 for seen in reading.objects)
            for thing in scene.things
        )
    )


def test_image_to_image_at_low_strength_keeps_the_layout(shapes_api: httpx.Client) -> None:
    scene = Scene(
        "black",
        (
            Thing("green", "triangle", "big", x=0.25, y=0.35, extent=0.34),
            Thing("orange", "square", "small", x=0.72, y=0.55, extent=0.2),
        ),
    )
    source = render(scene)
    caption = "a pink circle on a white background"

    # at 0.15 the model already drops the big triangle in 2 of 10 seeds: one circle is asked
    kept = [redraw(shapes_api, caption, source, strength=0.1, seed=s) for s in range(3)]
    redrawn = redraw(shapes_api, caption, source, strength=1.0, seed=0)

    assert all(keeps_layout(image, scene) for image in kept), [read_image(i) for i in kept]
    assert not keeps_layout(redrawn, scene)  # full strength follows the prompt alone


def test_a_higher_guidance_scale_raises_adherence_on_the_prompt_set(
    shapes_api: httpx.Client,
) -> None:
    # three objects and two relations, the prompts hardest to follow unguided: 6 vs 14 of 32
    # passed at guidance 1 and 5 when measured (the 50 evaluation pairs, 42 vs 49, leave too
    # little room); scenes of the training distribution, from seeds far past any training batch
    captions = [training_example(900_000_000 + i, count_weights=(0, 0, 1))[1] for i in range(32)]

    def adherence(guidance: float) -> float:
        passed = 0
        for index, caption in enumerate(captions):
            picture = draw(shapes_api, caption, seed=index, guidance_scale=guidance)[0]
            passed += judge(read_image(picture), parse_caption(caption)).passed
        return passed / len(captions)

    low, high = adherence(1.0), adherence(5.0)
    assert high >= low + 0.15, (low, high)


def test_a_negative_prompt_removes_what_it_names(shapes_api: httpx.Client) -> None:
    caption = "a blue square on a white background"  # the size is left to the model

    def big_squares(**options: Any) -> int:
        pictures = draw(shapes_api, caption, seed=40, n=8, **options)
        return sum(
            1
            for picture in pictures
            for seen in read_image(picture).objects
            if (seen.colour, seen.shape, seen.size) == ("blue", "square", "big")
        )

    plain = big_squares()
    negative = big_squares(negative_prompt="a big blue square")
    assert plain >= 3, plain
    assert negative <= plain // 3, (plain, negative)
