"""The official OpenAI Node SDK (npm `openai`, pinned in tests/clients/openai_node) at both
OpenAI bases pixelgate serves, `/v1` and `/oai/v1`: models.list, models.retrieve,
images.generate (b64_json and url), images.edit, and a clear refusal of createVariation for a
model without variations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Server

CHECK = Path(__file__).resolve().parent / "openai_node"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node not found: scripts/setup installs it (Debian's nodejs and npm)"
)


@pytest.mark.parametrize("base", ["/v1", "/oai/v1"])
def test_the_node_sdk_makes_every_images_and_models_call(server: Server, base: str) -> None:
    assert (CHECK / "node_modules" / "openai").is_dir(), "run scripts/setup (npm ci)"
    done = subprocess.run(
        [NODE or "node", "check.mjs"],
        cwd=CHECK,
        env={
            **os.environ,
            "OPENAI_BASE_URL": server.url + base,
            "OPENAI_API_KEY": server.admin_key,
            "PIXELGATE_MODEL": "local/tiny",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"check.mjs failed:\n{done.stdout}\n{done.stderr}"

    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["retrieved"] == {"id": "local/tiny", "owned_by": "diffusers"}
    assert seen["generated"] == "96x32"
    assert seen["edited"] == [96, 32]
    assert seen["variation"] == {
        "status": 400,
        "param": "model",
        "message": "Model 'local/tiny' does not support image variations",
    }
    assert seen["bad_size"]["status"] == 400
    assert seen["bad_size"]["param"] == "size"
