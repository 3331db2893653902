"""`pixelgate remove-bg` and `pixelgate jobs list`, with click's runner against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from pixelgate.cli.main import main
from tests.conftest import ADMIN_KEY, Server
from tests.rembg_server import disc_picture, is_cut_out, rembg_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    instance = rembg_server(tmp_path_factory.mktemp("cli-rembg") / "data", models_dir)
    yield instance
    instance.stop()


def run(server: Server, *args: str) -> Result:
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": ADMIN_KEY}
    return CliRunner().invoke(main, list(args), env=env)


def test_remove_bg_writes_a_transparent_png(server: Server, tmp_path: Path) -> None:
    photo = tmp_path / "in.jpg"
    photo.write_bytes(disc_picture("JPEG"))
    out = tmp_path / "out.png"

    result = run(server, "remove-bg", str(photo), "-o", str(out))

    assert result.exit_code == 0, result.output
    with Image.open(out) as cutout:
        assert (cutout.format, cutout.mode) == ("PNG", "RGBA")
        assert is_cut_out(cutout)
    path, url = result.stdout.split()
    assert path == str(out)
    assert url.startswith(f"{server.url}/v1/media/")
    assert result.stderr.startswith("job job_")


def test_remove_bg_names_the_output_beside_the_input_and_prints_json(
    server: Server, tmp_path: Path
) -> None:
    photo = tmp_path / "cat.png"
    photo.write_bytes(disc_picture())

    result = run(server, "remove-bg", str(photo), "--format", "webp", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["model"] == "rembg/u2netp"
    with Image.open(tmp_path / "cat-nobg.webp") as cutout:
        assert cutout.format == "WEBP"
        assert is_cut_out(cutout)


def test_remove_bg_of_a_file_that_is_no_picture_exits_2(server: Server, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")

    result = run(server, "remove-bg", str(notes))

    assert result.exit_code == 2
    assert "error [VALIDATION_ERROR] image is not a readable image" in result.stderr


def test_remove_bg_with_a_model_that_lacks_weights_exits_5(server: Server, tmp_path: Path) -> None:
    photo = tmp_path / "in.png"
    photo.write_bytes(disc_picture())

    result = run(server, "remove-bg", str(photo), "-m", "rembg/birefnet-general")

    assert result.exit_code == 5
    assert "MODEL_UNAVAILABLE" in result.stderr and "birefnet-general.onnx" in result.stderr


def test_jobs_list_shows_recent_jobs_and_filters(server: Server, tmp_path: Path) -> None:
    photo = tmp_path / "in.png"
    photo.write_bytes(disc_picture())
    assert run(server, "remove-bg", str(photo), "-o", str(tmp_path / "o.png")).exit_code == 0

    table = run(server, "jobs", "list", "--limit", "3")
    as_json = run(server, "jobs", "list", "--status", "succeeded", "--json")
    failed = run(server, "jobs", "list", "--status", "failed", "--json")

    assert table.exit_code == 0, table.output
    assert "remove-background" in table.stdout and "rembg/u2netp" in table.stdout
    jobs = json.loads(as_json.stdout)
    assert jobs and all(job["status"] == "succeeded" for job in jobs)
    assert jobs[0]["task"] == "remove-background"
    assert json.loads(failed.stdout) == [] or all(
        job["status"] == "failed" for job in json.loads(failed.stdout)
    )
