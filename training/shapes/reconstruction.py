"""How well the stage-1 autoencoder keeps a scene: the checker's accuracy on round trips.

    python -m training.shapes.reconstruction [--checkpoint .../vae-latest.pt] [--scenes 200]

A scene the checker cannot read back after encoding and decoding is one the diffusion model
cannot draw either, so this bounds the final scores from above.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from pixelgate.shapes import full_prompt, judge, read_image, render, training_example
from training.shapes import model
from training.shapes.train import CHECKPOINT_DIR

FIRST_SEED = 7 * 10**12  # far from the seeds training batches use


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT_DIR / "vae-latest.pt")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", type=Path, default=None, help="write a strip of round trips")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    state = torch.load(args.checkpoint, map_location="cpu")
    vae = model.build_vae()
    vae.load_state_dict(state["models"]["vae"])
    vae.eval()
    passed, errors = 0, []
    strip: list[np.ndarray] = []
    for seed in range(FIRST_SEED, FIRST_SEED + args.scenes):
        scene, _ = training_example(seed)
        original = np.asarray(render(scene, model.IMAGE_SIZE), dtype=np.float32)
        pixels = torch.from_numpy(original).permute(2, 0, 1)[None] / 127.5 - 1
        with torch.no_grad():
            decoded = vae.decode(vae.encode(pixels).latent_dist.mean).sample
        back = ((decoded[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).round().numpy()
        errors.append(float(np.abs(back - original).mean()))
        image = Image.fromarray(back.astype(np.uint8))
        passed += judge(read_image(image), full_prompt(scene)).passed
        if len(strip) < 16:
            strip.append(np.concatenate([original, back], axis=0).astype(np.uint8))
    print(
        f"step {state['step']}: checker reads {passed / args.scenes:.1%} of {args.scenes} "
        f"round trips exactly; mean absolute error {np.mean(errors):.2f} / 255; "
        f"latent scale {state['vae_scale']:.3f}"
    )
    if args.save:
        Image.fromarray(np.concatenate(strip, axis=1)).save(args.save)


if __name__ == "__main__":
    main()
