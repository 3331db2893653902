"""The TypeScript client (clients/typescript): its types are the OpenAPI document's, it
typechecks, and it drives a real server under Node."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import Server
from tests.rembg_server import disc_picture, is_cut_out, rembg_server

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node not found: scripts/setup installs it (Debian's nodejs and npm)"
)


def run(*command: str | Path, **env: str) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=CLIENT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    path = CLIENT / "node_modules" / ".bin"
    assert path.is_dir(), "no clients/typescript/node_modules: run scripts/setup"
    return path


def test_the_committed_types_are_the_openapi_documents(bin_dir: Path, tmp_path: Path) -> None:
    run(CLIENT / "generate", tmp_path, PYTHON=sys.executable)

    generated = (tmp_path / "schema.d.ts").read_text()
    assert generated == (CLIENT / "src" / "schema.d.ts").read_text(), (
        "clients/typescript/src/schema.d.ts is out of date with the OpenAPI document: "
        "run clients/typescript/generate and commit the result"
    )


def test_the_client_typechecks(bin_dir: Path) -> None:
    run(bin_dir / "tsc", "-p", ".", "--noEmit")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Server]:
    instance = rembg_server(tmp_path_factory.mktemp("typescript") / "data", models_dir)
    yield instance
    instance.stop()


def test_the_client_drives_a_real_server(bin_dir: Path, server: Server, tmp_path: Path) -> None:
    """Generate, an async job followed over SSE, edits (JSON and multipart), a background
    removal, and an error: test/smoke.ts, built with tsc and run by Node."""
    run(bin_dir / "tsc", "-p", ".")
    photo = tmp_path / "photo.png"
    photo.write_bytes(disc_picture())

    out = run(
        NODE or "node",
        "dist/test/smoke.js",
        PIXELGATE_URL=server.url,
        PIXELGATE_API_KEY=server.admin_key,
        PIXELGATE_PHOTO=str(photo),
    )

    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["events"][-1] == "succeeded"
    assert "running" in seen["events"]
    assert is_cut_out(Image.open(io.BytesIO(base64.b64decode(seen["cut_out_b64"]))))
    assert seen["error"] == {"status": 400, "code": "VALIDATION_ERROR", "param": "width"}
