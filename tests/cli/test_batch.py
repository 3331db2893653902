"""`pixelgate batch`, with click's runner against a real server."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from PIL import Image

from pixelgate.cli.main import main
from tests.conftest import ADMIN_KEY, Server


def run(server: Server, *args: str) -> Result:
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": ADMIN_KEY}
    return CliRunner().invoke(main, list(args), env=env)


def test_batch_waits_and_downloads_every_output(server: Server, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "a red circle\n"
        "\n"
        + json.dumps({"prompt": "a blue square", "seed": 4, "width": 32})
        + "\n"
        + json.dumps({"model": "local/tiny", "prompt": "a green dot", "output_format": "jpeg"})
        + "\n"
    )
    out = tmp_path / "out"

    result = run(
        server, "batch", str(prompts), "--model", "local/tiny",
        "--option", "width=64", "--option", "height=48", "--option", "num_steps=2",
        "--output-dir", str(out),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    lines = result.stdout.split()
    assert lines[0].startswith("batch_")
    assert lines[1:] == [str(out / "000-1.png"), str(out / "001-1.png"), str(out / "002-1.jpeg")]
    sizes = [Image.open(out / name).size for name in ("000-1.png", "001-1.png", "002-1.jpeg")]
    assert sizes == [(64, 48), (32, 48), (64, 48)]


def test_no_wait_prints_the_id_only_and_errors_are_reported(server: Server, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"a quoted prompt"\n')
    options = ["--option", "num_steps=2", "--option", "width=64", "--option", "height=64"]
    queued = run(server, "batch", str(prompts), "-m", "local/tiny", "--no-wait", *options)
    assert queued.exit_code == 0, queued.output
    assert queued.stdout.strip().startswith("batch_") and len(queued.stdout.split()) == 1

    unnamed = run(server, "batch", str(prompts))
    assert unnamed.exit_code != 0 and "--model" in unnamed.output

    prompts.write_text(json.dumps({"model": "local/tiny", "prompt": "x", "width": 63}) + "\n")
    invalid = run(server, "batch", str(prompts))
    assert invalid.exit_code != 0
    assert "requests.0.width" in invalid.stderr
