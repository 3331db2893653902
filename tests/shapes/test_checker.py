"""The checker reads rendered ground truth back (>= 99%) and judges captions strictly."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageFilter

from pixelgate.shapes import (
    PALETTE,
    Scene,
    Thing,
    full_prompt,
    judge,
    parse_caption,
    read_image,
    render,
    score,
    training_example,
)

SCENES = 300


def test_checker_reads_ground_truth_scenes_at_least_99_percent() -> None:
    for size, antialias in ((64, True), (64, False), (128, True)):
        correct = 0
        for seed in range(SCENES):
            scene, caption = training_example(seed)
            image = render(scene, size, antialias=antialias)
            reading = read_image(image)
            correct += judge(reading, full_prompt(scene)).passed and score(image, caption).passed
        assert correct / SCENES >= 0.99, (size, antialias, correct)


def _scene(*things: Thing, background: str = "white") -> Scene:
    return Scene(background, things)


RED_CIRCLE = Thing("red", "circle", "big", 0.3, 0.5, 0.34)
BLUE_SQUARE = Thing("blue", "square", "small", 0.75, 0.5, 0.2)


def test_reading_reports_colour_shape_size_place_and_background() -> None:
    reading = read_image(render(_scene(RED_CIRCLE, BLUE_SQUARE, background="black")))
    assert reading.background == "black"
    circle, square = reading.objects
    assert (circle.colour, circle.shape, circle.size) == ("red", "circle", "big")
    assert (square.colour, square.shape, square.size) == ("blue", "square", "small")
    assert abs(circle.x - 0.3) < 0.03 and abs(square.x - 0.75) < 0.03
    assert abs(circle.extent - 0.34) < 0.04 and circle.fit > 0.9


def test_judge_fails_each_kind_of_mistake() -> None:
    image = render(_scene(RED_CIRCLE, BLUE_SQUARE))
    assert score(image, "a red circle to the left of a blue square on white").passed
    assert score(image, "a big red circle left of a small blue square").passed
    wrong_relation = score(image, "a red circle to the right of a blue square on white")
    assert wrong_relation.objects and not wrong_relation.relations
    assert not score(image, "a red circle left of a blue square on black").background
    assert not score(image, "a red square left of a blue square on white").objects
    assert not score(image, "a small red circle left of a blue square on white").objects
    # one object too many is not "a red circle"
    assert not score(image, "a red circle on white").objects


def test_a_blank_or_noisy_image_holds_nothing() -> None:
    blank = Image.new("RGB", (64, 64), PALETTE["green"])
    reading = read_image(blank)
    assert reading.background == "green" and reading.objects == ()
    assert not judge(reading, parse_caption("a red circle on green")).passed
    moved = dataclasses.replace(RED_CIRCLE, colour="green")
    assert read_image(render(_scene(moved, background="green"))).objects == ()


def test_checker_tolerates_the_blur_and_noise_a_model_leaves() -> None:
    rng = np.random.default_rng(0)
    correct = 0
    for seed in range(200):
        scene, _ = training_example(seed)
        blurred = np.asarray(render(scene).filter(ImageFilter.GaussianBlur(1)), dtype=float)
        noisy = np.clip(blurred + rng.normal(0, 15, blurred.shape), 0, 255).astype(np.uint8)
        correct += judge(read_image(Image.fromarray(noisy)), full_prompt(scene)).passed
    assert correct / 200 >= 0.95
