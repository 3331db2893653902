"""What a preview of the current step costs inside a real local run: every step previewed,
the time spent making previews against the run's time.

    flock /tmp/cpu.lock .venv/bin/python bench/step_previews.py pixelgate/shapes 64 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from pixelgate.catalog import Catalog
from pixelgate.providers import local_diffusion
from pixelgate.providers.base import CancelToken, ImageTask, ProgressWithPreviews, StepPreview
from pixelgate.providers.step_previews import LatentFormat


class EveryStep:
    """A pacer that lets every step have its preview (the worst case)."""

    def due(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("size", type=int)
    parser.add_argument("steps", type=int)
    args = parser.parse_args()
    spent: list[float] = []
    render = local_diffusion.render

    def timed(latents: Any, latent_format: LatentFormat) -> StepPreview:
        start = time.perf_counter()
        picture = render(latents, latent_format)
        spent.append(time.perf_counter() - start)
        return picture

    local_diffusion.render = timed  # type: ignore[assignment]
    local_diffusion.PreviewPacer = EveryStep  # type: ignore[assignment,misc]
    catalog = Catalog.load()
    spec = catalog.resolve(args.model)
    provider = local_diffusion.LocalDiffusionProvider(
        Path(tempfile.mkdtemp()), device="cpu", torch_threads=2
    )
    raw = {"prompt": "a red circle", "width": args.size, "height": args.size}
    options = catalog.validate_options(spec, raw | {"num_steps": args.steps}).with_seed(1)
    progress = ProgressWithPreviews(lambda _step, _total: None, lambda _s, _t, _p: None)

    def run() -> float:
        start = time.perf_counter()
        provider.run(spec, ImageTask("generate", options), progress=progress, cancel=CancelToken())
        return time.perf_counter() - start

    run()  # loads the model
    spent.clear()
    total = run()
    each = sum(spent) / len(spent)
    print(
        f"{args.model} {args.size}px: {total / args.steps * 1000:.1f} ms a step; a preview "
        f"{each * 1000:.3f} ms ({sum(spent) / total * 100:.2f}% of the run, one every step)"
    )


if __name__ == "__main__":
    main()
