"""Start a new kind of text encoder from a trained pipeline's: the student learns to give the
teacher's hidden states for the same captions, so the UNet that learnt to read the teacher
reads the student from the first step, and stage 2 goes on from there.

    python -m training.shapes.distil --teacher pixelgate/weights/shapes \\
        --out training/shapes/checkpoints/distilled.pt [--steps 1500]
    python -m training.shapes.train --stage diffusion --steps 60000 \\
        --init-from training/shapes/checkpoints/distilled.pt

Writes a checkpoint at step 0 holding the teacher's UNet and autoencoder and the student text
encoder (`model.build_text_encoder()`), as `train --init-from` and `export` read it.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelgate.shapes import training_example
from training.shapes import model
from training.shapes.train import UNCONDITIONAL_CHANCE

WARMUP = 100
MIX = (0.2, 0.5, 0.3)  # scenes of 1, 2 and 3 objects, as stage 2 trains on
FIRST_SEED = 7 * 10**12  # examples apart from those stage 2 trains on


@dataclass(frozen=True)
class Distilled:
    state: dict[str, Any]  # the checkpoint to start stage 2 from
    first_loss: float
    last_loss: float  # mean squared error against the teacher's hidden states
    explained: float  # 1 - last loss / variance of the teacher's hidden states


def _captions(step: int, batch_size: int) -> list[str]:
    """Training captions, some dropped to "" as stage 2 drops them."""
    rng = random.Random(step)
    first = FIRST_SEED + step * batch_size
    return [
        "" if rng.random() < UNCONDITIONAL_CHANCE else training_example(s, count_weights=MIX)[1]
        for s in range(first, first + batch_size)
    ]


def _learning_rate(lr: float, step: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    return lr * min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / steps))


def distil(teacher: Path, *, steps: int, batch_size: int, lr: float, seed: int = 0) -> Distilled:
    import torch
    from diffusers import DiffusionPipeline

    torch.manual_seed(seed)
    tokenizer = model.build_tokenizer()
    pipeline = DiffusionPipeline.from_pretrained(str(teacher), local_files_only=True)
    teacher_text = pipeline.text_encoder.float().eval().requires_grad_(False)
    if pipeline.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise SystemExit(f"{teacher}: its tokenizer has another vocabulary")
    student = model.build_text_encoder()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    losses: list[float] = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(lr, step, steps)
        ids = model.caption_ids(tokenizer, _captions(step, batch_size))
        with torch.no_grad():
            target = teacher_text(ids).last_hidden_state
        loss = torch.nn.functional.mse_loss(student(ids).last_hidden_state, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    variance = float(target.var())  # of the last batch, against which the last losses ran
    unet, vae = pipeline.unet, pipeline.vae
    state = {
        "config": {"stage": "diffusion", "distilled_from": str(teacher)},
        "step": 0,
        "models": {
            "unet": {k: v.float() for k, v in unet.state_dict().items()},
            "text_encoder": student.state_dict(),
        },
        "vae_scale": float(vae.config.scaling_factor),
        "vae": {k: v.float() for k, v in vae.state_dict().items()},
    }
    tail = losses[-10:]
    last = sum(tail) / len(tail)
    return Distilled(state, losses[0], last, 1 - last / variance)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True, help="a pipeline folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = distil(
        args.teacher, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.state, args.out)
    print(
        f"wrote {args.out}: the student's error against the teacher {result.first_loss:.4f} -> "
        f"{result.last_loss:.5f} ({result.explained:.2%} of the teacher's variance explained)"
    )


if __name__ == "__main__":
    main()
