"""Score a shapes pipeline folder on the fixed evaluation prompts with the checker.

    python -m training.shapes.evaluate build/pixelgate--shapes [--steps 20] [--guidance 5]
        [--only single|pair|held_out]

Prints the table of issue 8: each category's pass rate against its goal, and the time of one
64x64 image. The prompts (`pixelgate.shapes.evaluation_prompts`) are never trained on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pixelgate.shapes import evaluation_prompts, judge, read_image
from pixelgate.shapes.dataset import Category

GOALS = {"single": 0.90, "pair": 0.70, "held_out": 0.60}
TITLES = {
    "single": "single object: colour, shape, background",
    "pair": "two objects and their relation",
    "held_out": "held-out colour-shape pairs",
}
SECONDS_GOAL = 1.0


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
) -> tuple[dict[str, tuple[int, int]], float]:
    """Pass counts per category, and the median seconds per image."""
    import torch

    results: dict[str, tuple[int, int]] = {category: (0, 0) for category in GOALS}
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
        passed, total = results[item.category]
        results[item.category] = (passed + judge(read_image(image), item.prompt).passed, total + 1)
    seconds.sort()
    return results, seconds[len(seconds) // 2]


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
    results, median = evaluate(
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
        passed, total = results[category]
        if not total:  # left out by --only or --limit
            continue
        rate = passed / total
        met = "yes" if rate >= goal else "no"
        print(f"| {TITLES[category]} | {total} | {rate:.0%} | >= {goal:.0%} | {met} |")
    met = "yes" if median < SECONDS_GOAL else "no"
    print(
        f"| 64x64, {args.steps} steps, {args.threads} CPU threads (median) | - | "
        f"{median:.2f} s | < {SECONDS_GOAL:.0f} s | {met} |"
    )


if __name__ == "__main__":
    main()
