"""Score a shapes pipeline folder on the fixed evaluation prompts with the checker.

    python -m training.shapes.evaluate build/pixelgate--shapes [--steps 20] [--guidance 5]
        [--only single|pair|held_out]

Prints the table of issue 8: each category's pass rate against its goal, and the time of one
64x64 image; then, of the two-object images whose objects are right, how many place them as
asked, mirrored (swapped) or on the other axis. The prompts
(`pixelgate.shapes.evaluation_prompts`) are never trained on.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import time
from pathlib import Path
from typing import Any, Literal, get_args

from pixelgate.shapes import Prompt, Reading, Relation, evaluation_prompts, judge, read_image
from pixelgate.shapes.dataset import Category

GOALS = {"single": 0.90, "pair": 0.70, "held_out": 0.60}
TITLES = {
    "single": "single object: colour, shape, background",
    "pair": "two objects and their relation",
    "held_out": "held-out colour-shape pairs",
}
SECONDS_GOAL = 1.0
OPPOSITE: dict[Relation, Relation] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
Placement = Literal["as asked", "mirrored", "other axis"]


@dataclasses.dataclass(frozen=True)
class Scores:
    passed: dict[str, tuple[int, int]]  # category: (passed, prompts)
    seconds: float  # median per image
    placements: collections.Counter[Placement]  # of two-object images with the objects right


def mirrored(prompt: Prompt) -> Prompt:
    """The prompt with every relation turned around: the named objects swap places."""
    claims = tuple(
        dataclasses.replace(claim, relation=OPPOSITE[claim.relation]) for claim in prompt.claims
    )
    return dataclasses.replace(prompt, claims=claims)


def placement(reading: Reading, prompt: Prompt) -> Placement:
    """Where an image whose objects are right put them, against where the prompt asks."""
    if judge(reading, prompt).relations:
        return "as asked"
    return "mirrored" if judge(reading, mirrored(prompt)).relations else "other axis"


def load(folder: Path, threads: int) -> Any:
    import torch
    from diffusers import DiffusionPipeline

    torch.set_num_threads(threads)
    pipeline = DiffusionPipeline.from_pretrained(
        str(folder), dtype=torch.float32, local_files_only=True
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def evaluate(
    pipeline: Any,
    *,
    steps: int,
    guidance: float,
    seed: int,
    limit: int | None = None,
    only: Category | None = None,
) -> Scores:
    """Pass counts per category, the median seconds per image, and where the two-object images
    put their objects."""
    import torch

    results: dict[str, tuple[int, int]] = {category: (0, 0) for category in GOALS}
    placements: collections.Counter[Placement] = collections.Counter()
    seconds: list[float] = []
    for index, item in enumerate(evaluation_prompts()[:limit]):
        if only is not None and item.category != only:
            continue
        started = time.perf_counter()
        image = pipeline(
            item.caption,
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=64,
            width=64,
            generator=torch.Generator("cpu").manual_seed(seed + index),
        ).images[0]
        seconds.append(time.perf_counter() - started)
        reading = read_image(image)
        verdict = judge(reading, item.prompt)
        passed, total = results[item.category]
        results[item.category] = (passed + verdict.passed, total + 1)
        if item.category == "pair" and verdict.objects:
            placements[placement(reading, item.prompt)] += 1
    seconds.sort()
    return Scores(results, seconds[len(seconds) // 2], placements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--only", choices=sorted(GOALS), help="only the prompts of one category")
    args = parser.parse_args()
    pipeline = load(args.folder, args.threads)
    scores = evaluate(
        pipeline,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        limit=args.limit,
        only=args.only,
    )
    print("| measure | prompts | result | goal | met |")
    print("|---|---|---|---|---|")
    for category, goal in GOALS.items():
        passed, total = scores.passed[category]
        if not total:  # left out by --only or --limit
            continue
        rate = passed / total
        met = "yes" if rate >= goal else "no"
        print(f"| {TITLES[category]} | {total} | {rate:.0%} | >= {goal:.0%} | {met} |")
    met = "yes" if scores.seconds < SECONDS_GOAL else "no"
    print(
        f"| 64x64, {args.steps} steps, {args.threads} CPU threads (median) | - | "
        f"{scores.seconds:.2f} s | < {SECONDS_GOAL:.0f} s | {met} |"
    )
    if scores.passed["pair"][1]:
        counts = ", ".join(f"{name} {scores.placements[name]}" for name in get_args(Placement))
        print(f"\ntwo-object images with both objects right: {scores.placements.total()}; {counts}")


if __name__ == "__main__":
    main()
