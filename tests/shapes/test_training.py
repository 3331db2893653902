"""The training pipeline at toy scale: resumes deterministically, exports a folder that
diffusers loads and that draws a 64x64 image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pixelgate.shapes import (
    Reading,
    Scene,
    Thing,
    parse_caption,
    read_image,
    render,
    training_example,
)
from pixelgate.shapes.captions import tokens
from training.shapes import model
from training.shapes.distil import distil
from training.shapes.evaluate import evaluate, mirrored, placement
from training.shapes.export import export, folder_bytes
from training.shapes.placement import placement_targets
from training.shapes.train import main, parse_args, train

LONGEST_CAPTION = (
    "a picture of a small orange triangle to the right of a small purple square, and a small"
    " yellow triangle to the left of the purple square against an orange background"
)


def _run(folder: Path, stage: str, steps: int, *extra: str) -> Any:
    config, args = parse_args(
        [
            *("--stage", stage, "--steps", str(steps), "--batch-size", "2", "--warmup", "1"),
            *("--checkpoint-every", "1", "--checkpoint-dir", str(folder), *extra),
        ]
    )
    return train(config, resume=args.resume, threads=1, log_every=1)


def _tensors(state: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor in a nested state, by its path."""
    found: dict[str, Any] = {}
    if isinstance(state, dict):
        for key, value in state.items():
            found |= _tensors(value, f"{prefix}/{key}")
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            found |= _tensors(value, f"{prefix}/{index}")
    elif isinstance(state, torch.Tensor):
        found[prefix] = state
    return found


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two steps of each stage, uninterrupted."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    _run(folder, "vae", 2)
    _run(folder, "diffusion", 2)
    return folder


@pytest.mark.parametrize("stage", ["vae", "diffusion"])
def test_a_resumed_run_reaches_the_same_state(trained: Path, tmp_path: Path, stage: str) -> None:
    if stage == "diffusion":  # both runs start from the same autoencoder
        (tmp_path / "vae-latest.pt").write_bytes((trained / "vae-latest.pt").read_bytes())
    else:
        _run(tmp_path, "vae", 1)
    if stage == "diffusion":
        _run(tmp_path, "diffusion", 1)
    halfway = _tensors(torch.load(tmp_path / f"{stage}-latest.pt", map_location="cpu"))
    resumed = _run(tmp_path, stage, 2, "--resume")
    assert resumed.step == 2
    expected = _tensors(torch.load(trained / f"{stage}-latest.pt", map_location="cpu"))
    actual = _tensors(resumed.state())
    assert expected.keys() == actual.keys() == halfway.keys() and len(expected) > 50
    assert [key for key in expected if not torch.equal(expected[key], actual[key])] == []
    # the second step did change the weights, so the equality above says something
    moved = [key for key in expected if not torch.equal(expected[key], halfway[key])]
    assert any("/models/" in key for key in moved) and any("/ema/" in key for key in moved)


def test_every_caption_fits_the_text_encoder_untruncated() -> None:
    tokenizer = model.build_tokenizer()
    longest = max((training_example(seed)[1] for seed in range(3000)), key=lambda c: len(tokens(c)))
    for caption in (longest, LONGEST_CAPTION):
        ids = tokenizer(caption).input_ids
        assert len(ids) == len(tokens(caption)) + 2 <= model.MAX_TOKENS
        assert model.token_ids()[model.UNKNOWN] not in ids


def test_the_object_mix_sets_how_many_objects_the_training_scenes_hold() -> None:
    config, _ = parse_args(["--stage", "diffusion", "--steps", "1", "--object-mix", "0,1,0"])
    assert config.object_mix == (0.0, 1.0, 0.0)
    scenes = [training_example(seed, count_weights=config.object_mix)[0] for seed in range(40)]
    assert {len(scene.things) for scene in scenes} == {2}
    # the default mix draws the examples the model has been trained on from the start
    assert training_example(7) == training_example(7, count_weights=(0.4, 0.4, 0.2))
    with pytest.raises(SystemExit):
        parse_args(["--stage", "diffusion", "--steps", "1", "--object-mix", "1,2"])


def test_a_compact_checkpoint_is_small_and_resumes(trained: Path, tmp_path: Path) -> None:
    for name in ("vae-latest.pt", "diffusion-latest.pt"):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    config, _ = parse_args(
        ["--stage", "diffusion", "--steps", "2", "--checkpoint-dir", str(tmp_path)]
    )
    train(config, resume=True, threads=1, log_every=1, compact=True)
    compact = tmp_path / "diffusion-compact.pt"
    assert compact.stat().st_size < 20 * 10**6
    # a new sitting with only the compact checkpoints goes on from their step and weights
    (tmp_path / "vae-latest.pt").unlink()
    (tmp_path / "diffusion-latest.pt").unlink()
    resumed = _run(tmp_path, "diffusion", 2, "--resume")
    assert resumed.step == 2
    saved = torch.load(compact, map_location="cpu")
    weights = resumed.trained["unet"].state_dict()
    assert all(torch.equal(weights[k], v.float()) for k, v in saved["models"]["unet"].items())


def test_a_fresh_run_starts_from_the_modules_of_a_checkpoint_that_fit(
    trained: Path, tmp_path: Path
) -> None:
    source = torch.load(trained / "diffusion-latest.pt", map_location="cpu")
    # a text encoder of another shape, as a run with another text encoder has
    source["models"]["text_encoder"] = {"embedding.weight": torch.zeros(3, 5)}
    earlier = tmp_path / "earlier.pt"
    torch.save(source, earlier)
    (tmp_path / "vae-latest.pt").write_bytes((trained / "vae-latest.pt").read_bytes())
    started = _run(tmp_path, "diffusion", 0, "--init-from", str(earlier))
    assert started.step == 0 and started.config.init_from == str(earlier)
    unet = started.trained["unet"].state_dict()
    assert all(torch.equal(unet[k], v) for k, v in source["models"]["unet"].items())
    assert all(torch.equal(started.ema["unet"][k], v) for k, v in unet.items())
    fresh = _run(tmp_path, "diffusion", 0)
    text, fresh_text = started.trained["text_encoder"].state_dict(), fresh.trained["text_encoder"]
    assert all(torch.equal(text[k], v) for k, v in fresh_text.state_dict().items())
    assert not all(torch.equal(unet[k], v) for k, v in fresh.trained["unet"].state_dict().items())


def test_a_distilled_text_encoder_starts_stage_two_from_a_pipeline(
    trained: Path, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    export(trained / "diffusion-latest.pt", teacher)
    distilled = distil(teacher, steps=30, batch_size=4, lr=1e-2)
    assert distilled.last_loss < distilled.first_loss / 2, distilled

    torch.save(distilled.state, tmp_path / "distilled.pt")
    (tmp_path / "vae-latest.pt").write_bytes((trained / "vae-latest.pt").read_bytes())
    started = _run(tmp_path, "diffusion", 1, "--init-from", str(tmp_path / "distilled.pt"))
    assert started.step == 1
    assert export(tmp_path / "distilled.pt", tmp_path / "student") < 20 * 10**6
    states = torch.load(tmp_path / "distilled.pt", map_location="cpu")["models"]
    exported = torch.load(trained / "diffusion-latest.pt", map_location="cpu")["ema"]["unet"]
    # the teacher's UNet, as exported (in half precision), is the student's starting UNet
    assert all(torch.equal(states["unet"][k], v.half().float()) for k, v in exported.items())


def test_the_exported_folder_loads_with_diffusers_and_draws(trained: Path, tmp_path: Path) -> None:
    from diffusers import DiffusionPipeline

    out = tmp_path / "pixelgate--shapes"
    size = export(trained / "diffusion-latest.pt", out)
    assert size == folder_bytes(out) < 20 * 10**6
    assert sorted(p.name for p in out.rglob("*.safetensors"))
    assert not list(out.rglob("*.bin"))
    pipeline = DiffusionPipeline.from_pretrained(out)
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.tokenizer("a red circle").input_ids == [
        model.token_ids()[word] for word in (model.START, "a", "red", "circle", model.END)
    ]
    images = pipeline(
        "a red circle on a white background",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).images
    assert images[0].size == (64, 64)
    again = pipeline(
        "a red circle on a white background",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).images
    assert images[0].tobytes() == again[0].tobytes()
    scores = evaluate(pipeline, steps=2, guidance=5.0, seed=0, limit=3)
    assert sum(total for _, total in scores.passed.values()) == 3 and scores.seconds > 0


def test_evaluation_tells_mirrored_objects_from_objects_on_the_other_axis() -> None:
    def drawn(circle_xy: tuple[float, float], square_xy: tuple[float, float]) -> Reading:
        circle = Thing("red", "circle", "big", *circle_xy, 0.34)
        square = Thing("blue", "square", "small", *square_xy, 0.2)
        return read_image(render(Scene("white", (circle, square))))

    prompt = parse_caption("a red circle to the left of a blue square on white")
    assert mirrored(prompt).claims[0].relation == "right of"
    assert mirrored(mirrored(prompt)) == prompt
    assert placement(drawn((0.3, 0.5), (0.75, 0.5)), prompt) == "as asked"
    assert placement(drawn((0.75, 0.5), (0.3, 0.5)), prompt) == "mirrored"
    assert placement(drawn((0.5, 0.3), (0.5, 0.75)), prompt) == "other axis"


def test_the_command_line_trains_and_checkpoints(tmp_path: Path) -> None:
    main(["--stage", "vae", "--steps", "1", "--batch-size", "1", "--checkpoint-dir", str(tmp_path)])
    state = torch.load(tmp_path / "vae-latest.pt", map_location="cpu")
    assert state["step"] == 1 and state["vae_scale"] > 0
    assert (tmp_path / "vae-log.jsonl").read_text().count("\n") == 1


def test_placement_targets_name_where_each_mentioned_object_sits() -> None:
    left = Thing("red", "circle", "big", 0.3, 0.5, 0.34)
    right = Thing("blue", "square", "small", 0.7, 0.5, 0.2)
    below = Thing("green", "triangle", "small", 0.7, 0.9, 0.2)
    words = model.build_tokenizer().convert_ids_to_tokens
    caption = "a red circle to the left of a blue square on white"
    ids = model.build_tokenizer()(caption).input_ids
    targets = placement_targets(Scene("white", (left, right)), caption)
    assert [(words(ids[t.token]), round(t.dx, 2), round(t.dy, 2)) for t in targets] == [
        ("red", -0.8, 0.0),
        ("circle", -0.8, 0.0),
        ("blue", 0.8, 0.0),
        ("square", 0.8, 0.0),
    ]
    # a third object, and "the blue square" naming the second again, after the middle of three
    caption = (
        "an image of a blue square right of a big red circle, and a green triangle below the"
        " blue square"
    )
    ids = model.build_tokenizer()(caption).input_ids
    targets = placement_targets(Scene("black", (left, right, below)), caption)
    assert [words(ids[t.token]) for t in targets][::2] == ["blue", "red", "green", "blue"]
    assert [round(t.dx, 2) for t in targets][::2] == [0.53, -1.07, 0.53, 0.53]
    # two alike objects that the words do not tell apart are left out; dropped captions too
    twin = Thing("red", "circle", "small", 0.7, 0.5, 0.2)
    caption = "a red circle to the left of a red circle"
    assert placement_targets(Scene("white", (left, twin)), caption) == []
    sized = "a big red circle left of a small red circle"
    assert len(placement_targets(Scene("white", (left, twin)), sized)) == 4
    assert placement_targets(Scene("white", (left,)), "") == []


def test_the_placement_objective_trains_a_head_that_is_never_exported(
    trained: Path, tmp_path: Path
) -> None:
    (tmp_path / "vae-latest.pt").write_bytes((trained / "vae-latest.pt").read_bytes())
    config, _ = parse_args(
        [
            *("--stage", "diffusion", "--steps", "1", "--checkpoint-dir", str(tmp_path)),
            *("--batch-size", "2", "--placement-weight", "0"),
        ]
    )
    before = train(config, resume=False, threads=1, log_every=1, compact=True)
    assert "placement_head" not in before.trained
    # the full checkpoint of a run without the head cannot resume a run with one...
    with pytest.raises(SystemExit, match="placement_head"):
        _run(tmp_path, "diffusion", 2, "--resume", "--placement-weight", "0.5")
    # ...its compact checkpoint can: the head starts fresh
    (tmp_path / "diffusion-latest.pt").unlink()
    (tmp_path / "diffusion-log.jsonl").unlink()
    run = _run(tmp_path, "diffusion", 3, "--resume", "--placement-weight", "0.5")
    assert run.step == 3 and "placement_head" in run.trained
    records = [
        json.loads(line) for line in (tmp_path / "diffusion-log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [2, 3]
    assert all(r["loss"] > r["denoising"] > 0 and r["placement"] > 0 for r in records)
    assert all(abs(r["loss"] - r["denoising"] - 0.5 * r["placement"]) < 1e-5 for r in records)
    export(tmp_path / "diffusion-latest.pt", tmp_path / "out")
    folders = {p.name for p in (tmp_path / "out").iterdir() if p.is_dir()}
    assert folders == {"scheduler", "text_encoder", "tokenizer", "unet", "vae"}


def test_the_export_takes_the_average_or_the_trained_weights(trained: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    state = torch.load(trained / "diffusion-latest.pt", map_location="cpu")
    for use_ema, source in ((True, state["ema"]), (False, state["models"])):
        out = tmp_path / str(use_ema)
        export(trained / "diffusion-latest.pt", out, use_ema=use_ema)
        (weights,) = (out / "unet").glob("*.safetensors")
        saved = load_file(weights)
        assert all(torch.equal(saved[k], v.half()) for k, v in source["unet"].items())
    # two steps in, the average and the weights differ, so the check above tells them apart
    assert any(
        not torch.equal(v, state["models"]["unet"][k]) for k, v in state["ema"]["unet"].items()
    )
