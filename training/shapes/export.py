"""Write the trained shapes model as a standard diffusers pipeline folder (safetensors).

    python -m training.shapes.export [--checkpoint training/shapes/checkpoints/diffusion-latest.pt]
        [--out build/pixelgate--shapes] [--raw-weights]

The UNet and the text encoder take their EMA weights (or, with --raw-weights, the trained
weights themselves: an average restarted a few hundred steps ago still holds mostly the old
weights); the autoencoder is the one the diffusion stage trained on, with its latent scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from training.shapes import model
from training.shapes.train import CHECKPOINT_DIR

MAX_FOLDER_BYTES = 20 * 10**6


def pipeline_from_checkpoint(state: dict[str, Any], *, use_ema: bool = True) -> Any:
    vae, unet, text_encoder = model.build_vae(), model.build_unet(), model.build_text_encoder()
    vae.load_state_dict(state["vae"])
    vae.register_to_config(scaling_factor=float(state["vae_scale"]))
    # a compact checkpoint carries the trained weights alone, no average
    weights = state["ema"] if use_ema and "ema" in state else state["models"]
    unet.load_state_dict(weights["unet"])
    text_encoder.load_state_dict(weights["text_encoder"])
    return model.build_pipeline(vae, unet, text_encoder)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def export(checkpoint: Path, out: Path, *, use_ema: bool = True) -> int:
    """Write the folder; returns its size in bytes (refusing one over 20 MB)."""
    import torch

    state = torch.load(checkpoint, map_location="cpu")
    pipeline = pipeline_from_checkpoint(state, use_ema=use_ema)
    model.save_pipeline(pipeline, out)
    size = folder_bytes(out)
    if size > MAX_FOLDER_BYTES:
        raise SystemExit(f"{out} holds {size / 1e6:.1f} MB, over the 20 MB budget")
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT_DIR / "diffusion-latest.pt")
    parser.add_argument("--out", type=Path, default=Path("build/pixelgate--shapes"))
    parser.add_argument(
        "--raw-weights", action="store_true", help="the trained weights, not their average"
    )
    args = parser.parse_args()
    size = export(args.checkpoint, args.out, use_ema=not args.raw_weights)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
