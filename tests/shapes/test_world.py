"""The shapes world: seeded, consistent with its captions, and free of held-out pairs."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pixelgate.shapes import (
    COLOURS,
    HELD_OUT_PAIRS,
    PALETTE,
    SHAPES,
    CaptionError,
    Phrase,
    evaluation_keys,
    evaluation_prompts,
    parse_caption,
    relation,
    render,
    sample_scene,
    scene_key,
    training_example,
)
from pixelgate.shapes.captions import describe
from pixelgate.shapes.world import GAP, MARGIN

SEEDS = range(500)


def test_the_same_seed_gives_the_same_example_and_pixels() -> None:
    for seed in (0, 1, 12345):
        first, second = training_example(seed), training_example(seed)
        assert first == second
        assert render(first[0]).tobytes() == render(second[0]).tobytes()
    assert len({training_example(seed)[1] for seed in range(50)}) > 40


def test_scenes_cover_the_world() -> None:
    scenes = [training_example(seed)[0] for seed in SEEDS]
    things = [thing for scene in scenes for thing in scene.things]
    assert {len(scene.things) for scene in scenes} == {1, 2, 3}
    assert {thing.colour for thing in things} == set(COLOURS)
    assert {thing.shape for thing in things} == set(SHAPES)
    assert {thing.size for thing in things} == {"small", "big"}
    assert {scene.background for scene in scenes} == set(COLOURS)
    assert len(COLOURS) >= 8


def test_palette_colours_are_well_separated() -> None:
    rgb = np.array(list(PALETTE.values()), dtype=float)
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 80


def test_objects_stay_inside_apart_and_in_nameable_relations() -> None:
    for seed in SEEDS:
        scene, _ = training_example(seed)
        assert scene.background not in {thing.colour for thing in scene.things}
        for thing in scene.things:
            left, top, right, bottom = thing.box()
            assert min(left, top) >= MARGIN - 1e-9 and max(right, bottom) <= 1 - MARGIN + 1e-9
        for i, a in enumerate(scene.things):
            for b in scene.things[i + 1 :]:
                assert relation(a, b) is not None
                ab, bb = a.box(), b.box()
                assert (
                    ab[2] + GAP <= bb[0]
                    or bb[2] + GAP <= ab[0]
                    or (ab[3] + GAP <= bb[1] or bb[3] + GAP <= ab[1])
                )


def test_captions_state_what_the_scene_holds() -> None:
    for seed in SEEDS:
        rng = random.Random(seed)
        scene = sample_scene(rng)
        caption, prompt = describe(scene, rng)
        assert parse_caption(caption) == prompt
        # every phrase names a distinct object of the scene, sizes only where true
        for phrase in prompt.objects:
            matching = [
                t for t in scene.things if (t.colour, t.shape) == (phrase.colour, phrase.shape)
            ]
            assert len(matching) == 1
            assert phrase.size in (None, matching[0].size)
        assert len(prompt.objects) == len(scene.things)
        assert prompt.background in (None, scene.background)
        for claim in prompt.claims:
            subject, reference = prompt.objects[claim.subject], prompt.objects[claim.reference]
            by_pair = {t.pair: t for t in scene.things}
            assert (
                relation(
                    by_pair[(subject.colour, subject.shape)],
                    by_pair[(reference.colour, reference.shape)],
                )
                == claim.relation
            )


def test_the_issue_examples_parse() -> None:
    prompt = parse_caption("a red circle on a white background")
    assert prompt.objects == (Phrase("red", "circle"),) and prompt.background == "white"
    prompt = parse_caption("a big blue square to the left of a small yellow triangle on black")
    assert prompt.objects == (
        Phrase("blue", "square", "big"),
        Phrase("yellow", "triangle", "small"),
    )
    assert [(c.subject, c.relation, c.reference) for c in prompt.claims] == [(0, "left of", 1)]
    assert prompt.background == "black"
    assert parse_caption("A blue square").background is None
    with pytest.raises(CaptionError):
        parse_caption("a dog on a white background")


def test_held_out_pairs_never_appear_in_training() -> None:
    for seed in range(3000):
        scene, _ = training_example(seed)
        assert not {thing.pair for thing in scene.things} & HELD_OUT_PAIRS
        assert scene_key(scene) not in evaluation_keys()


def test_the_evaluation_set_is_fixed_and_covers_each_category() -> None:
    prompts = evaluation_prompts()
    assert [p.caption for p in prompts][:3] == [
        "a big yellow triangle against a pink background",
        "an image of a pink circle on cyan",
        "a black square on cyan",
    ]
    by_category = {p.category: 0 for p in prompts}
    for item in prompts:
        by_category[item.category] += 1
        assert parse_caption(item.caption) == item.prompt
        assert item.prompt.background is not None
        held = {thing.pair for thing in item.scene.things} & HELD_OUT_PAIRS
        assert bool(held) == (item.category == "held_out")
    assert by_category == {"single": 50, "pair": 50, "held_out": 32}
    assert len({scene_key(p.scene) for p in prompts}) == len(prompts)
