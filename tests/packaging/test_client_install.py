"""`pip install pixelgate` is the client: the wheel, installed without extras in a fresh venv,
stays under 40 MB, has no server packages, and its CLI and SDK generate through a running
server (started from the test environment, which has every extra). Its dependencies come from
the package index pip is configured with (the one place these tests reach the network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ADMIN_KEY, Server

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 40 * 1024 * 1024

pytestmark = pytest.mark.timeout(240)


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


class ClientVenv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"
        self.site_packages = next((root / "venv" / "lib").glob("python*/site-packages"))
        self.baseline = tree_bytes(self.site_packages)
        """What the empty venv holds (pip, setuptools), not counted against the client."""
        # the test's own PYTHONPATH would put the source tree, not the wheel, on the path
        self.env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PYTHON", "PIXELGATE"))
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.root, env={**self.env, **env}, capture_output=True, text=True
        )


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientVenv]:
    root = tmp_path_factory.mktemp("client-install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "pixelgate", source / "pixelgate", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(root / "dist"), "./source"], cwd=root, check=True)
    [wheel] = (root / "dist").glob("pixelgate-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    venv = ClientVenv(root)
    installed = venv.run(str(venv.bin / "pip"), "install", "-q", str(wheel))
    assert installed.returncode == 0, installed.stderr
    yield venv


def test_the_client_install_is_small_and_has_no_server_packages(client_venv: ClientVenv) -> None:
    added = tree_bytes(client_venv.site_packages) - client_venv.baseline
    assert added < LIMIT_BYTES, f"{added / 2**20:.1f} MB installed"
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    server_only = ("torch", "diffusers", "fastapi", "uvicorn", "sqlalchemy", "pydantic", "celery")
    found = client_venv.run(str(client_venv.bin / "python"), "-c", probe % (server_only,))
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_the_client_cli_and_sdk_generate_through_a_server(
    client_venv: ClientVenv, server: Server
) -> None:
    env = {"PIXELGATE_URL": server.url, "PIXELGATE_API_KEY": ADMIN_KEY}
    made = client_venv.run(
        str(client_venv.bin / "pixelgate"),
        *("generate", "a red circle", "--model", "local/tiny", "-o", "cli.png"),
        *("--width", "64", "--height", "64", "--steps", "2"),
        **env,
    )
    assert made.returncode == 0, made.stderr
    assert Image.open(client_venv.root / "cli.png").size == (64, 64)

    script = (
        "import pixelgate\n"
        "with pixelgate.Client() as client:\n"
        "    result = client.images.generate(model='local/tiny', prompt='a red circle',\n"
        "                                    width=64, height=64, num_steps=2, seed=3)\n"
        "    result.data[0].save('sdk.png')\n"
    )
    made = client_venv.run(str(client_venv.bin / "python"), "-c", script, **env)
    assert made.returncode == 0, made.stderr
    assert Image.open(client_venv.root / "sdk.png").size == (64, 64)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["serve"], "pixelgate serve needs the server extra: pip install 'pixelgate[server]'"),
        (
            ["worker", "--models", "local/tiny"],
            "pixelgate worker needs the server and cluster extras: "
            "pip install 'pixelgate[server,cluster]'",
        ),
        (["pull", "pixelgate/shapes"], "pixelgate pull needs the local extra"),
        (["mcp"], "pixelgate mcp needs the mcp extra: pip install 'pixelgate[mcp]'"),
    ],
)
def test_server_commands_name_the_extra_they_need(
    client_venv: ClientVenv, command: list[str], message: str
) -> None:
    ran = client_venv.run(str(client_venv.bin / "pixelgate"), *command)
    assert ran.returncode == 1
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr
