"""Where each object a caption names sits in its scene: the target of the text encoder's
placement objective.

A caption such as "a red circle to the left of a blue square" fixes which object is on the
left only through the binding of the relation to the order of the objects, and a UNet whose
cross-attention reads word states one at a time cannot do that binding itself. So the trainer
asks the text encoder to do it: a linear head must read, from the states of each mentioned
object's colour and shape words, that object's offset from the middle of the objects. The
states the UNet attends to then say "the red circle is on the left" outright.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelgate.shapes import SHAPES, Scene, Thing, parse_caption
from pixelgate.shapes.captions import Phrase, tokens

OFFSET_SCALE = 4.0  # offsets in fractions of the image, scaled to about unit spread


@dataclass(frozen=True)
class WordTarget:
    """The word at `token` (in the tokenizer's ids, after its start token) names an object
    whose centre is (`dx`, `dy`) from the middle of the scene's objects, scaled."""

    token: int
    dx: float
    dy: float


def placement_targets(scene: Scene, caption: str) -> list[WordTarget]:
    """The colour and shape words of each object mentioned, with that object's offset. An
    object that the caption's words do not single out (two alike, no size said) is left out."""
    if not caption:
        return []
    prompt = parse_caption(caption)
    mentioned = list(prompt.objects)
    if len(prompt.claims) == 2:  # "..., and X left of the Y": "the Y" names an earlier object
        mentioned.append(prompt.objects[prompt.claims[1].reference])
    words = tokens(caption)
    shape_positions = [i for i, word in enumerate(words) if word in SHAPES]
    if len(shape_positions) != len(mentioned):
        raise ValueError(
            f"{caption!r}: {len(shape_positions)} shape words, {len(mentioned)} objects"
        )
    middle_x = sum(t.x for t in scene.things) / len(scene.things)
    middle_y = sum(t.y for t in scene.things) / len(scene.things)
    targets = []
    for phrase, shape_at in zip(mentioned, shape_positions, strict=True):
        thing = _the_thing(scene, phrase)
        if thing is None:
            continue
        dx = (thing.x - middle_x) * OFFSET_SCALE
        dy = (thing.y - middle_y) * OFFSET_SCALE
        # +1: the tokenizer puts its start token before the first word
        for word_at in (shape_at - 1, shape_at):
            targets.append(WordTarget(word_at + 1, dx, dy))
    return targets


def _the_thing(scene: Scene, phrase: Phrase) -> Thing | None:
    matches = [
        t
        for t in scene.things
        if (t.colour, t.shape) == (phrase.colour, phrase.shape) and phrase.size in (None, t.size)
    ]
    return matches[0] if len(matches) == 1 else None
