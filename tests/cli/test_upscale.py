"""`pixelgate upscale`, with click's runner against the shared real server (Lanczos)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner, Result
from PIL import Image

from pixelgate.cli.main import main
from tests.conftest import ADMIN_KEY, Server


def run(server: Server, *args: str) -> Result:
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": ADMIN_KEY}
    return CliRunner().invoke(main, list(args), env=env)


def small_picture(path: Path, size: tuple[int, int] = (30, 20)) -> Path:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_upscale_writes_the_larger_picture(server: Server, tmp_path: Path) -> None:
    small = small_picture(tmp_path / "in.png")
    out = tmp_path / "out.png"

    result = run(server, "upscale", str(small), "--factor", "4", "-o", str(out))

    assert result.exit_code == 0, result.output
    with Image.open(out) as large:
        assert (large.format, large.size) == ("PNG", (120, 80))
    path, url = result.stdout.split()
    assert path == str(out)
    assert url.startswith(f"{server.url}/v1/media/")
    assert result.stderr.startswith("job job_")


def test_upscale_names_the_output_beside_the_input_and_prints_json(
    server: Server, tmp_path: Path
) -> None:
    small = small_picture(tmp_path / "cat.png")

    result = run(server, "upscale", str(small), "-f", "2", "-m", "lanczos", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "pixelgate/lanczos"
    with Image.open(tmp_path / "cat-x2.png") as large:
        assert large.size == (60, 40)


def test_a_refused_upscale_says_why(server: Server, tmp_path: Path) -> None:
    small = small_picture(tmp_path / "in.png")

    result = run(server, "upscale", str(small), "-m", "pixelgate/shapes")

    assert result.exit_code != 0
    assert "does not support upscaling" in result.output
