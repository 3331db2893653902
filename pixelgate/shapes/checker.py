"""Reading a shapes-world image back, with no learned model, and judging it against a prompt.

1. Every pixel takes the nearest palette colour; the commonest colour of the border is the
   background.
2. Pixels of any other colour form objects (8-connected); specks are dropped.
3. An object's colour is the commonest colour of its interior. For each of circle, square
   and upright triangle, the ideal shape with the object's centroid and spread is laid over
   it; the one that overlaps best (intersection over union) is its shape, and that ideal
   shape's box gives its size (the longer side) and place (the box centre).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from pixelgate.shapes.captions import Claim, Phrase, Prompt, parse_caption
from pixelgate.shapes.world import (
    COLOURS,
    PALETTE,
    SHAPES,
    SIZE_THRESHOLD,
    Relation,
    Scene,
    Shape,
    Size,
    relation,
    relation_between,
)

WORK_SIZE = 64  # images are read at this size: the world is defined in fractions of the side
MIN_AREA = 0.005  # of the image: smaller blobs are specks, not objects (a small triangle ≈ 0.013)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_PALETTE_RGB = np.array([PALETTE[name] for name in COLOURS], dtype=np.float32)


@dataclass(frozen=True)
class Seen:
    """One object found in an image."""

    colour: str
    shape: Shape
    size: Size
    x: float  # box centre, fraction of the width
    y: float  # box centre, fraction of the height
    extent: float  # longer side of the box, fraction of the image side
    area: float  # fraction of the image
    fit: float  # intersection over union with the ideal shape


@dataclass(frozen=True)
class Reading:
    """What an image shows."""

    background: str
    objects: tuple[Seen, ...]


@dataclass(frozen=True)
class Verdict:
    """How an image measures up to a prompt."""

    background: bool  # right background, or the prompt names none
    objects: bool  # exactly the named objects: colour, shape, and size where named
    relations: bool  # every named relation holds (false when the objects are wrong)

    @property
    def passed(self) -> bool:
        return self.background and self.objects and self.relations


def _label_pixels(image: Image.Image) -> IntArray:
    rgb = image.convert("RGB")
    if rgb.size != (WORK_SIZE, WORK_SIZE):
        rgb = rgb.resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)
    pixels = np.asarray(rgb, dtype=np.float32)
    distances = ((pixels[:, :, None, :] - _PALETTE_RGB[None, None]) ** 2).sum(axis=-1)
    labels: IntArray = distances.argmin(axis=-1).astype(np.int64)
    return labels


def _components(mask: BoolArray) -> list[BoolArray]:
    """The 8-connected regions of a mask: each pixel takes the largest id among its
    neighbours until nothing changes, so each region ends up holding one id."""
    height, width = mask.shape
    ids = np.where(mask, np.arange(1, height * width + 1).reshape(height, width), 0)
    while True:
        padded = np.pad(ids, 1)
        grown = ids.copy()
        for dy, dx in itertools.product((0, 1, 2), repeat=2):
            np.maximum(grown, padded[dy : dy + height, dx : dx + width], out=grown)
        grown = np.where(mask, grown, 0)
        if np.array_equal(grown, ids):
            break
        ids = grown
    return [ids == value for value in np.unique(ids) if value != 0]


def _erode(mask: BoolArray) -> BoolArray:
    height, width = mask.shape
    padded = np.pad(mask, 1)
    inner = mask.copy()
    for dy, dx in itertools.product((0, 1, 2), repeat=2):
        inner &= padded[dy : dy + height, dx : dx + width]
    return inner


def _fitted_box(shape: Shape, mask: BoolArray) -> tuple[float, float, float, float]:
    """(centre x, centre y, width, height) in pixels of the ideal `shape` with the mask's
    centroid and spread: moments, unlike the bounding box, shrug off a stray edge pixel."""
    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
    # a uniform width w has variance w**2 / 12; pixels add 1/12 of their own
    var_x, var_y = float(xs.var()) + 1 / 12, float(ys.var()) + 1 / 12
    if shape == "square":
        return cx, cy, (12 * var_x) ** 0.5, (12 * var_y) ** 0.5
    if shape == "circle":
        return cx, cy, 4 * var_x**0.5, 4 * var_y**0.5
    # upright triangle: variances w**2 / 24 across and h**2 / 18 down; the centroid sits a
    # third of the height above the base, so the box centre is h / 6 higher
    height = (18 * var_y) ** 0.5
    return cx, cy - height / 6, (24 * var_x) ** 0.5, height


def _ideal(shape: Shape, box: tuple[float, float, float, float], side: int) -> BoolArray:
    """The ideal shape in `box`, sampled at the pixel centres of a side x side image."""
    cx, cy, width, height = box
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    du, dv = (x - cx) / (width / 2), (y - cy) / (height / 2)
    if shape == "square":
        inside: BoolArray = (np.abs(du) <= 1) & (np.abs(dv) <= 1)
    elif shape == "circle":
        inside = du**2 + dv**2 <= 1
    else:
        down = (dv + 1) / 2  # 0 at the apex, 1 at the base
        inside = (down >= 0) & (down <= 1) & (np.abs(du) <= down)
    return inside


def _describe(mask: BoolArray, labels: IntArray) -> Seen:
    side = labels.shape[0]
    fits: dict[Shape, tuple[float, tuple[float, float, float, float]]] = {}
    for candidate in SHAPES:
        box = _fitted_box(candidate, mask)
        ideal = _ideal(candidate, box, side)
        fits[candidate] = (float((mask & ideal).sum() / (mask | ideal).sum()), box)
    shape = max(SHAPES, key=lambda s: fits[s][0])
    fit, (cx, cy, width, height) = fits[shape]
    # edge pixels blend object and background, so the interior decides the colour
    interior = _erode(mask)
    votes = labels[interior if interior.sum() >= 4 else mask]
    colour = COLOURS[int(np.bincount(votes, minlength=len(COLOURS)).argmax())]
    extent = max(width, height) / side
    return Seen(
        colour=colour,
        shape=shape,
        size="small" if extent < SIZE_THRESHOLD else "big",
        x=cx / side,
        y=cy / side,
        extent=extent,
        area=float(mask.sum()) / side**2,
        fit=fit,
    )


def read_image(image: Image.Image) -> Reading:
    """The background and the objects of an image (any size; read at 64x64)."""
    labels = _label_pixels(image)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    background = int(np.bincount(border, minlength=len(COLOURS)).argmax())
    min_pixels = MIN_AREA * labels.size
    objects = [
        _describe(component, labels)
        for component in _components(labels != background)
        if component.sum() >= min_pixels
    ]
    objects.sort(key=lambda seen: (seen.x, seen.y))
    return Reading(COLOURS[background], tuple(objects))


def seen_relation(a: Seen, b: Seen) -> Relation | None:
    """Where `a` is relative to `b` in an image: the dominant axis of their offset."""
    return relation_between((a.x, a.y), (b.x, b.y), 1.0)


def _matches(phrase: Phrase, seen: Seen) -> bool:
    return (
        phrase.colour == seen.colour
        and phrase.shape == seen.shape
        and phrase.size in (None, seen.size)
    )


def judge(reading: Reading, prompt: Prompt) -> Verdict:
    """Whether an image reading shows what the prompt asks: the background, exactly the named
    objects (one seen object for each phrase, none extra) and the named relations."""
    background = prompt.background is None or prompt.background == reading.background
    objects = relations = False
    if len(reading.objects) == len(prompt.objects):
        for order in itertools.permutations(reading.objects):
            if all(_matches(p, s) for p, s in zip(prompt.objects, order, strict=True)):
                objects = True
                if all(_holds(claim, order) for claim in prompt.claims):
                    relations = True
                    break
    return Verdict(background, objects, relations)


def _holds(claim: Claim, order: tuple[Seen, ...]) -> bool:
    return seen_relation(order[claim.subject], order[claim.reference]) == claim.relation


def score(image: Image.Image, caption: str) -> Verdict:
    """Whether an image shows what a shapes-world caption asks."""
    return judge(read_image(image), parse_caption(caption))


def full_prompt(scene: Scene) -> Prompt:
    """Everything a scene holds, as a prompt: every size, every pair's relation, the
    background. An image satisfies it only when the checker reads the scene back exactly."""
    things = scene.things
    claims = []
    for i, j in itertools.combinations(range(len(things)), 2):
        rel = relation(things[i], things[j])
        if rel is None:
            raise ValueError("scene has a pair with no nameable relation")
        claims.append(Claim(i, rel, j))
    phrases = tuple(Phrase(t.colour, t.shape, t.size) for t in things)
    return Prompt(phrases, tuple(claims), scene.background)
