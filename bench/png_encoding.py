"""PNG encoding of generated images: Pillow as it was used (all five row filters tried on every
row, zlib level 6), Pillow at its fastest level, and pixelgate's writer (`pixelgate.imaging`:
every row Up-filtered, ISA-L deflate at level 1). Time (best of 9) and size, on real outputs.

Images: one output each of `bench/sd` and `bench/flux` (random weights at 256x256: noise) and of
`pixelgate/shapes` (64x64, trained: flat colours), that shapes image enlarged to 512x512 (a
smooth image at a real model's size), and the `bench/sd` output with an alpha channel (as
background removal makes). Every encoding is checked to decode to the same pixels.

    .venv/bin/python bench/png_encoding.py
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_models import building, cases, folder_name

from pixelgate.imaging import encode_png


def outputs(work: Path) -> dict[str, Image.Image]:
    """One image from each small case, made by its pipeline."""
    images = {}
    for case in cases("small", "cpu", torch.float32):
        folder = case.shipped or work / folder_name(case.model)
        if case.build is not None:
            with building("cpu", torch.float32):
                case.build(folder)
        pipeline = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
        pipeline.set_progress_bar_config(disable=True)
        with torch.inference_mode():
            images[case.model] = pipeline(
                "a red circle on a white background",
                num_inference_steps=case.steps,
                guidance_scale=case.guidance,
                width=case.width,
                height=case.height,
                generator=torch.Generator().manual_seed(0),
            ).images[0]
    shapes = images["pixelgate/shapes"]
    images["pixelgate/shapes, enlarged"] = shapes.resize((512, 512), Image.Resampling.LANCZOS)
    noise = np.asarray(images["bench/sd"])
    alpha = np.where(noise[..., :1] > 128, 255, 0).astype(np.uint8)
    images["bench/sd with alpha (RGBA)"] = Image.fromarray(np.dstack([noise, alpha]), "RGBA")
    return images


def pillow(**options: int) -> Callable[[Image.Image], bytes]:
    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", **options)
        return buffer.getvalue()

    return encode


ENCODERS: dict[str, Callable[[Image.Image], bytes]] = {
    "Pillow, default (before)": pillow(),
    "Pillow, compress_level=1": pillow(compress_level=1),
    "pixelgate (Up filter, ISA-L 1)": encode_png,
}


def best_of(runs: int, encode: Callable[[Image.Image], bytes], image: Image.Image) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        encode(image)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        images = outputs(Path(work))
    print("| image | " + " | ".join(ENCODERS) + " |")
    print("| --- |" + " ---: |" * len(ENCODERS))
    for name, image in images.items():
        cells = []
        for encode in ENCODERS.values():
            data = encode(image)
            with Image.open(io.BytesIO(data)) as decoded:
                assert np.array_equal(np.asarray(decoded), np.asarray(image)), name
            cells.append(f"{best_of(9, encode, image) * 1000:.2f} ms, {len(data) / 1024:.1f} kB")
        print(f"| {name} {image.width}x{image.height} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
