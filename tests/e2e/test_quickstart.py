"""scripts/quickstart leaves the user one command from where it ended (issue 22): the command it
prints serves the same data again, its link answers 200, and so does the web page it names.

The real script runs, with `scripts/setup` stubbed out and `.venv/bin` pointing at this test's
interpreter (the suite's setup has already run)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import wait_ready

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def checkout(root: Path) -> None:
    """A copy of the repository's scripts, with setup done and .venv this interpreter."""
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "quickstart", root / "scripts" / "quickstart")
    wrappers = {
        "scripts/setup": "exit 0",
        ".venv/bin/python": f'exec {shlex.quote(sys.executable)} "$@"',
        ".venv/bin/pixelgate": f'exec {shlex.quote(sys.executable)} -m pixelgate "$@"',
    }
    for name, body in wrappers.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)


def test_the_printed_command_serves_the_quickstart_data_again(tmp_path: Path) -> None:
    root = tmp_path / "clone"
    checkout(root)
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIXELGATE")}
    env |= {"PIXELGATE_PORT": str(port), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    quickstart = subprocess.run(
        ["bash", "scripts/quickstart"], cwd=root, env=env, capture_output=True, text=True
    )

    assert quickstart.returncode == 0, quickstart.stdout + quickstart.stderr
    [link] = re.findall(r"^out\.png\s+(\S+)$", quickstart.stdout, re.MULTILINE)
    [command] = [line for line in quickstart.stdout.splitlines() if line.startswith("  ")]
    data_dir = root / "pixelgate-data"
    assert shlex.split(command) == [
        str(root / ".venv/bin/pixelgate"),
        *("serve", "--data-dir", str(data_dir), "--port", str(port)),
    ]
    page = f"http://127.0.0.1:{port}/"
    assert f"open {page} and sign in with the key in {data_dir}/admin_key" in quickstart.stdout
    assert (data_dir / "admin_key").is_file()

    log = tmp_path / "again.log"
    with log.open("wb") as output:
        again = subprocess.Popen(
            shlex.split(command), cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", again, log)
        image = httpx.get(link, timeout=30)
        assert image.status_code == 200
        assert image.content == (root / "out.png").read_bytes()
        assert httpx.get(page, timeout=30).status_code == 200
    finally:
        again.terminate()
        again.wait(30)
    assert "created the admin API key" not in log.read_text()  # the same data, the same key
