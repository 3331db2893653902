"""The shapes world: scenes of 1 to 3 flat shapes on a coloured background, sampled from a seed.

A `Scene` is the ground truth: every object's colour, shape, size, centre and extent, in
fractions of the image side (x to the right, y downwards), so one scene renders at any size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

Shape = Literal["circle", "square", "triangle"]
Size = Literal["small", "big"]
Relation = Literal["left of", "right of", "above", "below"]
Split = Literal["train", "held_out"]

SHAPES: tuple[Shape, ...] = get_args(Shape)
SIZES: tuple[Size, ...] = get_args(Size)
RELATIONS: tuple[Relation, ...] = get_args(Relation)

# Ten colours far apart in RGB (the closest pair, orange and yellow, is 83 apart), so that a
# nearest-colour rule reads them back even from a blurry drawing.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (255, 150, 30),
    "yellow": (250, 230, 50),
    "green": (40, 170, 60),
    "cyan": (40, 210, 230),
    "blue": (40, 70, 220),
    "purple": (150, 60, 200),
    "pink": (255, 140, 200),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)

# Colour-shape pairs that never appear in a training scene: the model must compose them.
HELD_OUT_PAIRS: frozenset[tuple[str, Shape]] = frozenset(
    {("red", "triangle"), ("green", "circle"), ("blue", "square"), ("yellow", "circle")}
)

# Extents (side or diameter, as a fraction of the image side) of each size; the gap between
# 0.22 and 0.30 is where a reader draws the line (`SIZE_THRESHOLD`).
EXTENTS: dict[Size, tuple[float, float]] = {"small": (0.16, 0.22), "big": (0.30, 0.38)}
SIZE_THRESHOLD = 0.26
MARGIN = 0.04  # empty border around every object, so the image border shows the background
GAP = 0.06  # least empty space between two objects' boxes
# A relation holds when the offset along its axis is at least this many times the other
# offset: diagonal layouts, which plain English cannot name, are never sampled.
RELATION_RATIO = 1.5
OBJECT_COUNT_WEIGHTS = (0.4, 0.4, 0.2)  # of 1, 2 and 3 objects


@dataclass(frozen=True)
class Thing:
    """One object of a scene."""

    colour: str
    shape: Shape
    size: Size
    x: float  # centre, fraction of the width from the left
    y: float  # centre, fraction of the height from the top
    extent: float  # side of its bounding square, fraction of the image side

    @property
    def pair(self) -> tuple[str, Shape]:
        return (self.colour, self.shape)

    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) in fractions of the image side."""
        half = self.extent / 2
        return (self.x - half, self.y - half, self.x + half, self.y + half)


@dataclass(frozen=True)
class Scene:
    """The ground truth of one image."""

    background: str
    things: tuple[Thing, ...]


def relation_between(
    a_xy: tuple[float, float], b_xy: tuple[float, float], ratio: float
) -> Relation | None:
    """Where point a is relative to point b, by the dominant axis of their offset; None when
    neither axis dominates by `ratio`."""
    dx = a_xy[0] - b_xy[0]
    dy = a_xy[1] - b_xy[1]
    if abs(dx) >= ratio * abs(dy) and dx != 0:
        return "left of" if dx < 0 else "right of"
    if abs(dy) >= ratio * abs(dx) and dy != 0:
        return "above" if dy < 0 else "below"
    return None


def relation(a: Thing, b: Thing) -> Relation | None:
    """Where `a` is relative to `b` in a sampled scene (None: too diagonal to name)."""
    return relation_between((a.x, a.y), (b.x, b.y), RELATION_RATIO)


def _separated(a: Thing, b: Thing) -> bool:
    a_box, b_box = a.box(), b.box()
    apart_x = a_box[2] + GAP <= b_box[0] or b_box[2] + GAP <= a_box[0]
    apart_y = a_box[3] + GAP <= b_box[1] or b_box[3] + GAP <= a_box[1]
    return apart_x or apart_y


def _place(rng: random.Random, kinds: list[tuple[str, Shape, Size]]) -> tuple[Thing, ...] | None:
    """Positions for the objects, none overlapping and every pair in a nameable relation."""
    for _ in range(200):
        things: list[Thing] = []
        for colour, shape, size in kinds:
            extent = rng.uniform(*EXTENTS[size])
            low, high = MARGIN + extent / 2, 1 - MARGIN - extent / 2
            things.append(
                Thing(colour, shape, size, rng.uniform(low, high), rng.uniform(low, high), extent)
            )
        pairs = [(a, b) for i, a in enumerate(things) for b in things[i + 1 :]]
        if all(_separated(a, b) and relation(a, b) is not None for a, b in pairs):
            return tuple(things)
    return None


def sample_scene(
    rng: random.Random,
    *,
    split: Split = "train",
    count: int | None = None,
    count_weights: tuple[float, float, float] = OBJECT_COUNT_WEIGHTS,
    excluded: frozenset[tuple[object, ...]] = frozenset(),
) -> Scene:
    """A random scene of `count` objects, or of 1, 2 or 3 drawn with `count_weights`. `train`
    scenes never hold a held-out colour-shape pair; `held_out` scenes hold at least one. Scenes
    whose `scene_key` is in `excluded` are never returned."""
    while True:
        n = count or rng.choices((1, 2, 3), weights=count_weights)[0]
        background = rng.choice(COLOURS)
        colours = rng.sample([c for c in COLOURS if c != background], n)
        kinds = [(colour, rng.choice(SHAPES), rng.choice(SIZES)) for colour in colours]
        held = [(colour, shape) in HELD_OUT_PAIRS for colour, shape, _ in kinds]
        if (split == "train" and any(held)) or (split == "held_out" and not any(held)):
            continue
        things = _place(rng, kinds)
        if things is None:
            continue
        scene = Scene(background, things)
        if scene_key(scene) not in excluded:
            return scene


def scene_key(scene: Scene) -> tuple[object, ...]:
    """What an evaluation prompt pins down about a scene: the background and the colour-shape
    pairs (sizes and places aside). Training leaves out every scene whose key an evaluation
    prompt has, so the model is scored on combinations it never saw."""
    return (scene.background, frozenset(thing.pair for thing in scene.things))
