"""Train the shapes model: deterministic, resumable from its checkpoints, on a CPU or a GPU.

    # stage 1: the autoencoder, on rendered training scenes
    python -m training.shapes.train --stage vae --steps 3000 --batch-size 32
    # stage 2: the UNet and the text encoder, on latents of the frozen stage-1 autoencoder
    python -m training.shapes.train --stage diffusion --steps 50000 --batch-size 64
    # stage 2 started from the UNet of an earlier run (the modules that fit), at step 0
    python -m training.shapes.train --stage diffusion --steps 50000 --init-from old.pt
    # either, continued from its latest checkpoint
    python -m training.shapes.train --stage diffusion --steps 80000 --resume
    # at the end of a sitting: a compact checkpoint (< 20 MB) to commit for the next one
    python -m training.shapes.train --stage diffusion --steps 0 --resume --compact

Batch k holds the training examples of seeds `seed * 10**9 + k * batch + i` and noise drawn
from a generator seeded by (seed, k), so a run resumed from step k's checkpoint continues
exactly as the uninterrupted run would have. A compact checkpoint keeps only the weights (in
half precision): resuming from one restarts the optimizer moments and the EMA from them, which
is close to, but not bit for bit, the uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelgate.shapes import Scene, render, training_example
from pixelgate.shapes.world import OBJECT_COUNT_WEIGHTS
from training.shapes import model
from training.shapes.placement import placement_targets

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
EXAMPLES_PER_SEED = 10**9
UNCONDITIONAL_CHANCE = 0.1  # captions dropped to "" so that guidance has something to push from
KL_WEIGHT = 1e-6
SNR_GAMMA = 5.0
PLACEMENT_WEIGHT = 0.1


@dataclass(frozen=True)
class Config:
    stage: str
    steps: int
    batch_size: int
    lr: float
    warmup: int
    checkpoint_every: int
    checkpoint_dir: str
    seed: int
    ema_decay: float
    device: str
    object_mix: tuple[float, float, float] = OBJECT_COUNT_WEIGHTS
    """How often a training scene holds 1, 2 and 3 objects."""
    init_from: str | None = None
    """A checkpoint whose weights start the modules they fit (a fresh run only)."""
    placement_weight: float = PLACEMENT_WEIGHT
    """Weight of the text encoder's placement objective (`placement.py`); 0: none."""


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("vae", "diffusion"), required=True)
    parser.add_argument("--steps", type=int, required=True, help="train until this step")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="vae 1e-3, diffusion 3e-4")
    parser.add_argument("--warmup", type=int, default=200, help="steps of linear lr warm-up")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--checkpoint-dir", default=str(CHECKPOINT_DIR))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--resume", action="store_true", help="continue the latest checkpoint")
    parser.add_argument(
        "--compact", action="store_true", help="also write a compact checkpoint at the end"
    )
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--object-mix",
        type=_object_mix,
        default=OBJECT_COUNT_WEIGHTS,
        help="weights of scenes with 1, 2 and 3 objects (default 0.4,0.4,0.2)",
    )
    parser.add_argument(
        "--init-from",
        help="start a fresh run from the weights of this checkpoint, full or compact, in each"
        " module they fit (such as the UNet of a run with another text encoder)",
    )
    parser.add_argument(
        "--placement-weight",
        type=float,
        default=PLACEMENT_WEIGHT,
        help="weight of the text encoder's placement objective, 0 for none (default"
        f" {PLACEMENT_WEIGHT})",
    )
    args = parser.parse_args(argv)
    lr = args.lr if args.lr is not None else (1e-3 if args.stage == "vae" else 3e-4)
    config = Config(
        stage=args.stage,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        warmup=args.warmup,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=args.checkpoint_dir,
        seed=args.seed,
        ema_decay=args.ema_decay,
        device=args.device,
        object_mix=args.object_mix,
        init_from=args.init_from,
        placement_weight=args.placement_weight,
    )
    return config, args


def _object_mix(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        one, two, three = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected three weights, of 1, 2 and 3 objects, such as 0.25,0.5,0.25"
        ) from None
    if min(one, two, three) < 0 or one + two + three <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: weights must be >= 0, not all 0")
    return one, two, three


@dataclass(frozen=True)
class Batch:
    """The training examples of one step."""

    pixels: Any
    """Images in [-1, 1], (batch, 3, 64, 64)."""
    captions: list[str]
    scenes: list[Scene]


def batch_examples(config: Config, step: int) -> Batch:
    """The training examples of the batch at `step`."""
    import torch

    first = config.seed * EXAMPLES_PER_SEED + step * config.batch_size
    images, captions, scenes = [], [], []
    for seed in range(first, first + config.batch_size):
        scene, caption = training_example(seed, count_weights=config.object_mix)
        images.append(np.asarray(render(scene, model.IMAGE_SIZE), dtype=np.float32))
        captions.append(caption)
        scenes.append(scene)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1
    return Batch(pixels, captions, scenes)


def step_generator(config: Config, step: int) -> Any:
    import torch

    return torch.Generator("cpu").manual_seed(config.seed * 1_000_003 + step)


def learning_rate(config: Config, step: int) -> float:
    return config.lr * min(1.0, (step + 1) / max(1, config.warmup))


def bfloat16_is_fast(device: Any) -> bool:
    """Whether the frozen autoencoder should encode in bfloat16: on a device with bfloat16
    instructions that halves its time (latents within 0.3% of float32's); on a CPU without
    them (AVX2 alone) it is 20 times slower than float32."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


class Trainer:
    """The models, optimizer and EMA of one stage, and one step of training."""

    def __init__(self, config: Config) -> None:
        import torch

        self.config = config
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        self.step = 0
        self.vae = model.build_vae().to(self.device)
        self.vae_scale = 1.0
        if config.stage == "vae":
            self.trained: dict[str, Any] = {"vae": self.vae}
        else:
            self._load_vae(_stage_one_result(Path(config.checkpoint_dir)))
            self.vae.requires_grad_(False).eval()
            self.encode_in_bfloat16 = bfloat16_is_fast(self.device)
            self.tokenizer = model.build_tokenizer()
            self.trained = {
                "unet": model.build_unet().to(self.device),
                "text_encoder": model.build_text_encoder().to(self.device),
            }
            if config.placement_weight > 0:  # used in training only, never exported
                head = torch.nn.Linear(model.TEXT_WIDTH, 2)
                self.trained["placement_head"] = head.to(self.device)
            self.noise_schedule = model.build_training_scheduler()
            alphas = self.noise_schedule.alphas_cumprod.to(self.device)
            self.snr = alphas / (1 - alphas)
            self.sqrt_alpha = alphas.sqrt()
            self.sqrt_sigma = (1 - alphas).sqrt()
        params = [p for module in self.trained.values() for p in module.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        self.ema = {
            name: {k: v.detach().clone() for k, v in module.state_dict().items()}
            for name, module in self.trained.items()
        }

    def train_step(self) -> dict[str, float]:
        """One step; the loss and, where there are several, its parts."""
        import torch

        config = self.config
        batch = batch_examples(config, self.step)
        generator = step_generator(config, self.step)
        pixels = batch.pixels.to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, self.step)
        parts = (
            {"loss": self._vae_loss(pixels, generator)}
            if config.stage == "vae"
            else self._diffusion_loss(pixels, batch, generator)
        )
        loss = parts["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()
        self.step += 1
        self._update_ema()
        return {name: float(value.item()) for name, value in parts.items()}

    def _vae_loss(self, pixels: Any, generator: Any) -> Any:
        import torch

        posterior = self.vae.encode(pixels).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(self.device)
        latents = posterior.mean + posterior.std * noise
        decoded = self.vae.decode(latents).sample
        reconstruction = torch.nn.functional.mse_loss(decoded, pixels)
        kl = posterior.kl().mean() / pixels[0].numel()
        return reconstruction + KL_WEIGHT * kl

    def _diffusion_loss(self, pixels: Any, examples: Batch, generator: Any) -> dict[str, Any]:
        import torch

        batch = pixels.shape[0]
        in_bfloat16 = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.encode_in_bfloat16
        )
        with torch.no_grad(), in_bfloat16:
            posterior = self.vae.encode(pixels).latent_dist
        mean, std = posterior.mean.float(), posterior.std.float()
        latent_noise = torch.randn(mean.shape, generator=generator).to(self.device)
        latents = (mean + std * latent_noise) * self.vae_scale
        drop = torch.rand(batch, generator=generator) < UNCONDITIONAL_CHANCE
        captions = [
            "" if dropped else c
            for c, dropped in zip(examples.captions, drop.tolist(), strict=True)
        ]
        ids = model.caption_ids(self.tokenizer, captions).to(self.device)
        timesteps = torch.randint(0, model.TRAIN_TIMESTEPS, (batch,), generator=generator)
        noise = torch.randn(latents.shape, generator=generator).to(self.device)
        timesteps = timesteps.to(self.device)
        a = self.sqrt_alpha[timesteps].view(-1, 1, 1, 1)
        s = self.sqrt_sigma[timesteps].view(-1, 1, 1, 1)
        noisy = a * latents + s * noise
        target = a * noise - s * latents  # v
        states = self.trained["text_encoder"](ids).last_hidden_state
        predicted = self.trained["unet"](noisy, timesteps, states).sample
        # min-SNR-5 weighting with a floor of 1, written for v: weight clamp(snr, 1, 5) on the
        # x0 error is clamp(snr, 1, 5) / (snr + 1) on the v error; the floor keeps the pure-noise
        # step (snr 0), which sets the background colour, in the loss
        snr = self.snr[timesteps]
        weight = snr.clamp(1.0, SNR_GAMMA) / (snr + 1)
        errors = (predicted.float() - target.float()).pow(2).mean(dim=(1, 2, 3))
        denoising = (weight * errors).mean()
        if "placement_head" not in self.trained:
            return {"loss": denoising}
        placement = self._placement_loss(states, examples.scenes, captions)
        loss = denoising + self.config.placement_weight * placement
        return {"loss": loss, "denoising": denoising, "placement": placement}

    def _placement_loss(self, states: Any, scenes: list[Scene], captions: list[str]) -> Any:
        """How far the placement head, reading the text encoder's states of each mentioned
        object's words, is from where that object sits (`placement.py`)."""
        import torch

        rows, columns, offsets = [], [], []
        for row, (scene, caption) in enumerate(zip(scenes, captions, strict=True)):
            for word in placement_targets(scene, caption):
                rows.append(row)
                columns.append(word.token)
                offsets.append((word.dx, word.dy))
        if not offsets:
            return states.sum() * 0.0
        read = self.trained["placement_head"](states[rows, columns])
        wanted = torch.tensor(offsets, dtype=read.dtype, device=self.device)
        return torch.nn.functional.mse_loss(read, wanted)

    def _update_ema(self) -> None:
        import torch

        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for name, module in self.trained.items():
                shadow = self.ema[name]
                for key, value in module.state_dict().items():
                    if value.dtype.is_floating_point:
                        shadow[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
                    else:
                        shadow[key].copy_(value)

    def state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "step": self.step,
            "models": {name: module.state_dict() for name, module in self.trained.items()},
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "vae_scale": self.vae_scale,
            "vae": self.vae.state_dict(),
        }

    def _load_vae(self, state: dict[str, Any]) -> None:
        """The autoencoder and latent scale a checkpoint holds (or trained with)."""
        self.vae.load_state_dict({k: v.float() for k, v in state["vae"].items()})
        self.vae_scale = float(state["vae_scale"])

    def load(self, state: dict[str, Any]) -> None:
        missing = self.trained.keys() - state["models"].keys()
        if missing:
            raise SystemExit(
                f"the checkpoint has no {', '.join(sorted(missing))}: a full checkpoint resumes"
                " only the run that wrote it (its compact checkpoint starts what is new afresh)"
            )
        self.step = int(state["step"])
        self._load_vae(state)
        for name, module in self.trained.items():
            module.load_state_dict(state["models"][name])
        for name, shadow in state["ema"].items():
            for key, value in shadow.items():
                self.ema[name][key].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])

    def measure_vae_scale(self) -> float:
        """1 / std of the latents of a fixed batch: latents the UNet sees have unit spread."""
        import torch

        probe = Config(**{**asdict(self.config), "batch_size": 64})
        pixels = batch_examples(probe, 10**6).pixels
        with torch.no_grad():
            latents = self.vae.encode(pixels.to(self.device)).latent_dist.mean
        return float(1 / latents.std())


def _stage_one_result(folder: Path) -> dict[str, Any]:
    """The trained autoencoder: from its own checkpoint, full or compact, or else from a
    diffusion checkpoint (each carries the autoencoder it trained on)."""
    import torch

    for name in ("vae-latest.pt", "vae-compact.pt", "diffusion-latest.pt", "diffusion-compact.pt"):
        if (folder / name).exists():
            state: dict[str, Any] = torch.load(folder / name, map_location="cpu")
            return state
    raise SystemExit(f"no trained autoencoder in {folder}: run --stage vae first")


def checkpoint_path(config: Config) -> Path:
    return Path(config.checkpoint_dir) / f"{config.stage}-latest.pt"


def compact_path(config: Config) -> Path:
    return Path(config.checkpoint_dir) / f"{config.stage}-compact.pt"


def _halved(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.half() if v.dtype.is_floating_point else v for k, v in state.items()}


def save_compact(trainer: Trainer) -> Path:
    """The weights alone, in half precision: small enough to commit between sittings."""
    import torch

    path = compact_path(trainer.config)
    state = {
        "config": asdict(trainer.config),
        "step": trainer.step,
        "models": {name: _halved(module.state_dict()) for name, module in trainer.trained.items()},
        "vae_scale": trainer.vae_scale,
        "vae": _halved(trainer.vae.state_dict()),
    }
    torch.save(state, path)
    return path


def load_compact(trainer: Trainer, state: dict[str, Any]) -> None:
    """Its step and weights; a module it lacks (a head added since) starts fresh."""
    trainer.step = int(state["step"])
    trainer._load_vae(state)
    for name in trainer.trained:
        if name in state["models"]:
            _start_from(trainer, name, state["models"][name])


def _start_from(trainer: Trainer, name: str, weights: dict[str, Any]) -> None:
    """A module's weights, in float32, and its EMA restarted from them."""
    module = trainer.trained[name]
    module.load_state_dict({k: v.float() for k, v in weights.items()})
    trainer.ema[name] = {k: v.detach().clone() for k, v in module.state_dict().items()}


def load_fitting(trainer: Trainer, state: dict[str, Any]) -> list[str]:
    """The weights of a checkpoint's modules into this trainer's modules of the same name and
    the same tensors; the others keep their fresh weights. The names of those loaded."""
    loaded = []
    for name, module in trainer.trained.items():
        weights = state["models"].get(name, {})
        fresh = module.state_dict()
        if weights.keys() == fresh.keys() and all(
            weights[key].shape == fresh[key].shape for key in fresh
        ):
            _start_from(trainer, name, weights)
            loaded.append(name)
    return loaded


def save_checkpoint(trainer: Trainer) -> Path:
    """Written aside, then renamed: a run killed mid-write leaves the last checkpoint whole."""
    import torch

    config = trainer.config
    folder = Path(config.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if config.stage == "vae":
        trainer.vae_scale = trainer.measure_vae_scale()
    staging = folder / f".{config.stage}-latest.pt.tmp"
    torch.save(trainer.state(), staging)
    staging.replace(checkpoint_path(config))
    return checkpoint_path(config)


def train(
    config: Config, *, resume: bool, threads: int, log_every: int, compact: bool = False
) -> Trainer:
    import torch

    torch.set_num_threads(threads)
    trainer = Trainer(config)
    latest, small = checkpoint_path(config), compact_path(config)
    if resume and latest.exists():
        trainer.load(torch.load(latest, map_location="cpu"))
        print(f"resumed {latest} at step {trainer.step}", flush=True)
    elif resume and small.exists():
        load_compact(trainer, torch.load(small, map_location="cpu"))
        print(f"resumed {small} at step {trainer.step} (fresh optimizer and EMA)", flush=True)
    elif config.init_from:
        loaded = load_fitting(trainer, torch.load(config.init_from, map_location="cpu"))
        print(f"started from {config.init_from}: {', '.join(loaded) or 'nothing fits'}", flush=True)
    log_path = Path(config.checkpoint_dir) / f"{config.stage}-log.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started, losses = time.monotonic(), []
    while trainer.step < config.steps:
        losses.append(trainer.train_step())
        step = trainer.step
        if step % log_every == 0 or step == config.steps:
            elapsed = time.monotonic() - started
            record = {
                "step": step,
                **{name: sum(parts[name] for parts in losses) / len(losses) for name in losses[0]},
                "lr": learning_rate(config, step - 1),
                "seconds_per_step": elapsed / len(losses),
            }
            with log_path.open("a") as log:
                log.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
            started, losses = time.monotonic(), []
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(trainer)
    if compact:
        print(f"wrote {save_compact(trainer)}", flush=True)
    return trainer


def main(argv: list[str] | None = None) -> None:
    config, args = parse_args(argv)
    train(
        config,
        resume=args.resume,
        threads=args.threads,
        log_every=args.log_every,
        compact=args.compact,
    )


if __name__ == "__main__":
    main()
