"""Captions of shapes-world scenes in plain English, and a parser that reads them back.

A `Prompt` is what a caption states: the objects (a size only where the caption says one),
the relations it names and the background. Written and parsed captions share one grammar:

    caption  := [lead] objects [" " background]
    objects  := phrase | phrase " " rel " " phrase | phrase " " rel " " phrase ", and " phrase
                " " rel " the " colour " " shape
    phrase   := ("a" | "an") [size " "] colour " " shape
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pixelgate.shapes.world import (
    COLOURS,
    SHAPES,
    SIZES,
    Relation,
    Scene,
    Shape,
    Size,
    Thing,
    relation,
)

RELATION_WORDS: dict[Relation, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
# "{a}" is the article the colour takes ("a" or "an")
BACKGROUND_FORMS = ("on {a} {} background", "on {}", "against {a} {} background", "on a plain {}")
LEADS = ("", "", "", "a picture of ", "an image of ", "a drawing of ")
SIZE_MENTION_CHANCE = 0.5  # a caption states each object's size this often
BACKGROUND_MENTION_CHANCE = 0.9


class CaptionError(ValueError):
    """A caption outside the shapes-world grammar."""


@dataclass(frozen=True)
class Phrase:
    """One object as a caption names it."""

    colour: str
    shape: Shape
    size: Size | None = None


@dataclass(frozen=True)
class Claim:
    """`objects[subject]` is `relation` `objects[reference]`."""

    subject: int
    relation: Relation
    reference: int


@dataclass(frozen=True)
class Prompt:
    """What a caption states."""

    objects: tuple[Phrase, ...]
    claims: tuple[Claim, ...] = ()
    background: str | None = None


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _phrase_text(phrase: Phrase) -> str:
    words = [w for w in (phrase.size, phrase.colour, phrase.shape) if w]
    return " ".join([_article(words[0]), *words])


def caption_text(prompt: Prompt, rng: random.Random) -> str:
    """Plain English for a prompt, in one of the grammar's forms (the rng picks which)."""
    objects = prompt.objects
    parts = [_phrase_text(objects[0])]
    if len(objects) >= 2:
        first = prompt.claims[0]
        parts = [
            _phrase_text(objects[first.subject]),
            rng.choice(RELATION_WORDS[first.relation]),
            _phrase_text(objects[first.reference]),
        ]
    if len(objects) == 3:
        second = prompt.claims[1]
        ref = objects[second.reference]
        parts[-1] += ","
        parts += [
            "and",
            _phrase_text(objects[second.subject]),
            rng.choice(RELATION_WORDS[second.relation]),
            f"the {ref.colour} {ref.shape}",
        ]
    if prompt.background is not None:
        form = rng.choice(BACKGROUND_FORMS)
        parts.append(form.format(prompt.background, a=_article(prompt.background)))
    return rng.choice(LEADS) + " ".join(parts)


def describe(scene: Scene, rng: random.Random) -> tuple[str, Prompt]:
    """A caption of the scene and the prompt it states. Objects appear in the caption's order;
    the claims name relations that hold in the scene."""
    things = list(scene.things)
    rng.shuffle(things)

    def phrase(thing: Thing) -> Phrase:
        size = thing.size if rng.random() < SIZE_MENTION_CHANCE else None
        return Phrase(thing.colour, thing.shape, size)

    claims: list[Claim] = []
    for index in range(1, len(things)):
        # the first claim links the first two objects; the third object links to either
        subject, reference = (0, 1) if index == 1 else (2, rng.randrange(2))
        rel = relation(things[subject], things[reference])
        if rel is None:
            raise ValueError("scene has a pair with no nameable relation")
        claims.append(Claim(subject, rel, reference))
    background = scene.background if rng.random() < BACKGROUND_MENTION_CHANCE else None
    prompt = Prompt(tuple(phrase(t) for t in things), tuple(claims), background)
    return caption_text(prompt, rng), prompt


def tokens(text: str) -> list[str]:
    """Lower-case words, with commas as their own token (the tokenizer splits the same way)."""
    return text.lower().replace(",", " , ").split()


_RELATION_SEQUENCES = sorted(
    ((tuple(words.split()), rel) for rel, forms in RELATION_WORDS.items() for words in forms),
    key=lambda item: -len(item[0]),
)


class _Reader:
    def __init__(self, text: str) -> None:
        self.words = tokens(text)
        self.at = 0

    def peek(self, offset: int = 0) -> str | None:
        index = self.at + offset
        return self.words[index] if index < len(self.words) else None

    def take(self, *allowed: str) -> str:
        word = self.peek()
        if word is None or word not in allowed:
            raise CaptionError(f"expected one of {allowed!r} at word {self.at + 1}, got {word!r}")
        self.at += 1
        return word

    def maybe(self, *allowed: str) -> bool:
        if self.peek() in allowed:
            self.at += 1
            return True
        return False

    def phrase(self) -> Phrase:
        self.take("a", "an")
        size: Size | None = None
        if self.peek() in SIZES:
            size = "small" if self.take(*SIZES) == "small" else "big"
        colour = self.take(*COLOURS)
        return Phrase(colour, _shape(self.take(*SHAPES)), size)

    def relation(self) -> Relation:
        for sequence, rel in _RELATION_SEQUENCES:
            if tuple(self.words[self.at : self.at + len(sequence)]) == sequence:
                self.at += len(sequence)
                return rel
        raise CaptionError(f"expected a relation at word {self.at + 1}, got {self.peek()!r}")

    def at_relation(self) -> bool:
        return any(
            tuple(self.words[self.at : self.at + len(sequence)]) == sequence
            for sequence, _ in _RELATION_SEQUENCES
        )


def _shape(word: str) -> Shape:
    for shape in SHAPES:
        if shape == word:
            return shape
    raise CaptionError(f"unknown shape {word!r}")


def parse_caption(text: str) -> Prompt:
    """The prompt a caption states. Raises `CaptionError` for text outside the grammar."""
    reader = _Reader(text)
    for lead in ("picture", "image", "drawing"):
        if reader.peek(1) == lead and reader.peek(2) == "of":
            reader.at += 3
    objects = [reader.phrase()]
    claims: list[Claim] = []
    if reader.at_relation():
        rel = reader.relation()
        objects.append(reader.phrase())
        claims.append(Claim(0, rel, 1))
        if reader.maybe(","):
            reader.take("and")
            objects.append(reader.phrase())
            rel = reader.relation()
            reader.take("the")
            colour, shape = reader.take(*COLOURS), _shape(reader.take(*SHAPES))
            matches = [
                i for i, p in enumerate(objects[:2]) if (p.colour, p.shape) == (colour, shape)
            ]
            if len(matches) != 1:
                raise CaptionError(f"'the {colour} {shape}' names no earlier object")
            claims.append(Claim(2, rel, matches[0]))
    background: str | None = None
    if reader.maybe("on", "against"):
        reader.maybe("a", "an")
        reader.maybe("plain")
        background = reader.take(*COLOURS)
        reader.maybe("background")
    if reader.peek() is not None:
        raise CaptionError(f"unexpected word {reader.peek()!r} at word {reader.at + 1}")
    return Prompt(tuple(objects), tuple(claims), background)


def vocabulary() -> tuple[str, ...]:
    """Every word a caption can hold, sorted: the text encoder's word-level vocabulary."""
    words = {","} | set(COLOURS) | set(SHAPES) | set(SIZES) | {"a", "an", "the", "and"}
    for forms in (*RELATION_WORDS.values(), BACKGROUND_FORMS, LEADS):
        for form in forms:
            words |= set(form.replace("{a}", "a an").replace("{}", " ").split())
    return tuple(sorted(words))
