"""What a shapes model trains on and what it is scored on, both fixed by seeds.

The evaluation prompts come first: training never shows a scene with the same background and
colour-shape pairs as any of them (`scene_key`), nor any held-out colour-shape pair.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Literal

from pixelgate.shapes.captions import Prompt, describe
from pixelgate.shapes.world import OBJECT_COUNT_WEIGHTS, Scene, Split, sample_scene, scene_key

Category = Literal["single", "pair", "held_out"]

EVALUATION_SEED = 20_250_808
# single: one object of a trained colour-shape pair; pair: two objects and their relation;
# held_out: one object of a colour-shape pair no training scene holds
EVALUATION_SIZES: dict[Category, int] = {"single": 50, "pair": 50, "held_out": 32}
_CATEGORY_SCENES: dict[Category, tuple[Split, int]] = {
    "single": ("train", 1),
    "pair": ("train", 2),
    "held_out": ("held_out", 1),
}


@dataclass(frozen=True)
class EvaluationPrompt:
    """One prompt of the fixed evaluation set, with the scene it was written from."""

    category: Category
    caption: str
    prompt: Prompt
    scene: Scene


@functools.cache
def evaluation_prompts() -> tuple[EvaluationPrompt, ...]:
    """The fixed evaluation set: every prompt names its background, no two share a key."""
    rng = random.Random(EVALUATION_SEED)
    chosen: list[EvaluationPrompt] = []
    keys: set[tuple[object, ...]] = set()
    for category, wanted in EVALUATION_SIZES.items():
        split, count = _CATEGORY_SCENES[category]
        found = 0
        while found < wanted:
            scene = sample_scene(rng, split=split, count=count)
            caption, prompt = describe(scene, rng)
            if prompt.background is None or scene_key(scene) in keys:
                continue
            keys.add(scene_key(scene))
            chosen.append(EvaluationPrompt(category, caption, prompt, scene))
            found += 1
    return tuple(chosen)


@functools.cache
def evaluation_keys() -> frozenset[tuple[object, ...]]:
    return frozenset(scene_key(item.scene) for item in evaluation_prompts())


def training_example(
    seed: int, *, count_weights: tuple[float, float, float] = OBJECT_COUNT_WEIGHTS
) -> tuple[Scene, str]:
    """The training scene and caption for one seed (the same seed and weights of 1, 2 and 3
    objects, the same example)."""
    rng = random.Random(seed)
    scene = sample_scene(
        rng, split="train", count_weights=count_weights, excluded=evaluation_keys()
    )
    caption, _ = describe(scene, rng)
    return scene, caption
