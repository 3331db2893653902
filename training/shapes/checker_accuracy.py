"""Print how often the checker reads rendered ground-truth scenes back exactly.

.venv/bin/python -m training.shapes.checker_accuracy [--scenes 500]
"""

from __future__ import annotations

import argparse
from collections import Counter

from pixelgate.shapes import full_prompt, judge, read_image, render, score, training_example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=500)
    args = parser.parse_args()
    print("| render | objects | scenes | exact reading | caption satisfied |")
    print("|---|---|---|---|---|")
    for size, antialias in ((64, True), (64, False), (128, True), (256, True)):
        total: Counter[int] = Counter()
        exact: Counter[int] = Counter()
        captioned: Counter[int] = Counter()
        for seed in range(args.scenes):
            scene, caption = training_example(seed)
            image = render(scene, size, antialias=antialias)
            n = len(scene.things)
            total[n] += 1
            exact[n] += judge(read_image(image), full_prompt(scene)).passed
            captioned[n] += score(image, caption).passed
        label = f"{size}x{size} {'anti-aliased' if antialias else 'hard edges'}"
        for n in (*sorted(total), 0):
            count = sum(total.values()) if n == 0 else total[n]
            hits = sum(exact.values()) if n == 0 else exact[n]
            caps = sum(captioned.values()) if n == 0 else captioned[n]
            name = "all" if n == 0 else str(n)
            print(f"| {label} | {name} | {count} | {hits / count:.1%} | {caps / count:.1%} |")


if __name__ == "__main__":
    main()
