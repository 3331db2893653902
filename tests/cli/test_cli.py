"""The `pixelgate` client commands, run with click's runner against a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image as PILImage

import pixelgate
from pixelgate.cli.main import main
from tests.conftest import ADMIN_KEY, Server

FAST = ["--width", "64", "--height", "64", "--steps", "4"]


def run(server: Server, *args: str, key: str = ADMIN_KEY) -> Result:
    """The command with the server's URL and a key from the environment, as a user sets them."""
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": key}
    return CliRunner().invoke(main, list(args), env=env)


def test_generate_writes_a_png_and_prints_its_url(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.png"

    result = run(server, "generate", "a red circle", "--model", "local/tiny", "-o", str(out), *FAST)

    assert result.exit_code == 0, result.output
    with PILImage.open(out) as picture:
        assert (picture.format, picture.size) == ("PNG", (64, 64))
    path, url = result.stdout.split()
    assert path == str(out)
    assert url.startswith(f"{server.url}/v1/media/")


def test_generate_several_images_numbers_the_files(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "dots.png"

    result = run(server, "generate", "dots", "-m", "tiny", "-o", str(out), "--n", "2", *FAST)

    assert result.exit_code == 0, result.output
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["dots-1.png", "dots-2.png"]
    assert len(result.stdout.splitlines()) == 2


def test_generate_json_prints_the_result(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "seeded.webp"
    result = run(
        server,
        "generate",
        "a seeded square",
        "--model",
        "local/tiny",
        "-o",
        str(out),
        "--format",
        "webp",
        "--option",
        "seed=42",
        "--option",
        "guidance_scale=3.5",
        "--json",
        *FAST,
    )

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["model"] == "local/tiny"
    assert body["job_id"].startswith("job")
    assert [image["seed"] for image in body["data"]] == [42]
    with PILImage.open(out) as picture:
        assert picture.format == "WEBP"


def test_generate_and_jobs_say_what_a_job_cost(server: Server, tmp_path: Path) -> None:
    with pixelgate.Client(base_url=server.url, api_key=ADMIN_KEY) as admin:
        admin.admin.create_tenant(
            "cli-payer", name="payer", prices={"local/tiny": {"default": "0.03"}}
        )
        key = admin.admin.create_key(tenant_id="cli-payer", name="cli")["key"]
    out = tmp_path / "paid.png"

    made = run(server, "generate", "paid", "-m", "tiny", "-o", str(out), "--n", "2", *FAST, key=key)
    as_json = run(
        server, "generate", "paid", "-m", "tiny", "-o", str(out), "--json", *FAST, key=key
    )
    job_id = json.loads(as_json.stdout)["job_id"]
    shown = run(server, "jobs", "get", job_id, key=key)
    listed = run(server, "jobs", "list", key=key)

    assert made.exit_code == 0, made.output
    assert "cost 0.06 USD" in made.stderr
    assert json.loads(as_json.stdout)["cost"] == {"amount": "0.03", "currency": "USD"}
    assert "cost" in shown.stdout and "0.03 USD" in shown.stdout
    assert listed.stdout.count("0.03") == 1 and listed.stdout.count("0.06") == 1


def test_models_lists_the_tiny_model(server: Server) -> None:
    table = run(server, "models")
    as_json = run(server, "models", "--json")

    assert table.exit_code == 0, table.output
    assert "local/tiny" in table.stdout
    assert as_json.exit_code == 0, as_json.output
    tiny = next(model for model in json.loads(as_json.stdout) if model["id"] == "local/tiny")
    assert tiny["available"] is True


def test_jobs_get_shows_a_finished_job(server: Server) -> None:
    with pixelgate.Client(base_url=server.url, api_key=ADMIN_KEY) as client:
        job_id = client.images.generate(
            model="local/tiny", prompt="x", width=64, height=64, num_steps=4
        ).job_id

    shown = run(server, "jobs", "get", job_id)
    as_json = run(server, "jobs", "get", job_id, "--json")

    assert shown.exit_code == 0, shown.output
    assert job_id in shown.stdout and "succeeded" in shown.stdout
    body = json.loads(as_json.stdout)
    assert (body["id"], body["status"]) == (job_id, "succeeded")
    assert body["result"]["data"][0]["file_id"]


def test_jobs_cancel_cancels_a_queued_or_running_job(server: Server) -> None:
    with pixelgate.Client(base_url=server.url, api_key=ADMIN_KEY) as client:
        job = client.images.submit(
            model="local/tiny", prompt="slow", width=128, height=128, num_steps=150
        )
        result = run(server, "jobs", "cancel", job.id)
        done = client.jobs.wait(job.id, timeout=30)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{job.id}: ")
    assert done.status == "canceled"


def test_an_unknown_job_exits_4(server: Server) -> None:
    result = run(server, "jobs", "get", "job_missing")

    assert result.exit_code == 4
    assert result.stderr.startswith("error [NOT_FOUND] ")


def test_a_bad_key_exits_3(server: Server) -> None:
    result = run(server, "models", key="pg_wrong")

    assert result.exit_code == 3
    assert result.stderr.startswith("error [UNAUTHORIZED] ")


def test_the_url_and_key_flags_win_over_the_environment(server: Server) -> None:
    result = run(server, "models", "--api-key", "pg_wrong")
    assert result.exit_code == 3

    flags = ["--url", server.url, "--api-key", ADMIN_KEY]
    env = {"PIXELGATE_URL": "http://127.0.0.1:9", "PIXELGATE_API_KEY": "pg_wrong"}
    result = CliRunner().invoke(main, ["models", *flags], env=env)
    assert result.exit_code == 0, result.output


def test_an_invalid_width_exits_2(server: Server, tmp_path: Path) -> None:
    result = run(
        server,
        "generate",
        "x",
        "-m",
        "local/tiny",
        "-o",
        str(tmp_path / "x.png"),
        "--width",
        "1000",
    )

    assert result.exit_code == 2
    assert "Invalid width" in result.stderr
    assert "(param: width)" in result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_a_malformed_option_is_a_usage_error(server: Server, bad: str) -> None:
    result = run(server, "generate", "x", "-m", "local/tiny", "--option", bad)

    assert result.exit_code == 2
    assert "key=value" in result.stderr


def test_no_server_exits_1() -> None:
    result = CliRunner().invoke(main, ["models", "--url", "http://127.0.0.1:9", "--api-key", "k"])

    assert result.exit_code == 1
    assert result.stderr.startswith("error [CONNECTION_ERROR] ")


def interruptible() -> None:
    """In the child, before exec: Ctrl-C as from a terminal. An ignored or blocked SIGINT is
    inherited, and a library in the test process may have set one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_interrupting_generate_cancels_the_job(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": ADMIN_KEY}
    command = [sys.executable, "-m", "pixelgate", "generate", "slow", "-m", "local/tiny"]
    options = ["--width", "128", "--height", "128", "--steps", "150", "-o", str(tmp_path / "x")]
    process = subprocess.Popen(
        [*command, *options],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=interruptible,
    )
    assert process.stderr is not None
    try:
        job_id = process.stderr.readline().split()[-1]
        with pixelgate.Client(base_url=server.url, api_key=ADMIN_KEY) as client:
            for event in client.jobs.events(job_id):
                if event.type == "progress":
                    break
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 130
            assert "canceled job" in process.stderr.read()
            assert client.jobs.wait(job_id, timeout=30).status == "canceled"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert not (tmp_path / "x").exists()
