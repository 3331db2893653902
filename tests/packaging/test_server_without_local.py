"""`pixelgate[server]` without `[local]` (issue 22): the server starts no model worker process
(it would die importing torch, again and again), is ready, and lists local models as
unavailable, naming the extra to install."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.conftest import Server

BLOCKER = """
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "diffusers", "transformers", "huggingface_hub"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_a_server_without_the_local_extra_names_it(tmp_path: Path, models_dir: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)  # as if torch and diffusers were absent
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    server = Server(
        tmp_path / "data", models_dir, PYTHONPATH=path, PIXELGATE_PRELOAD_MODELS='["local/tiny"]'
    ).start()
    try:
        assert server.process is not None
        with server.client() as api:
            model = api.get("/v1/models/local/tiny").json()["data"]
            made = api.post(
                "/v1/inference/images/generate", json={"model": "local/tiny", "prompt": "a"}
            )
        assert httpx.get(f"{server.url}/readyz").json()["checks"]["models"] == "ok"
        assert children(server.process.pid) == []
    finally:
        server.stop()
    reason = "a local model needs the local extra: pip install 'pixelgate[local]'"
    assert (model["available"], model["unavailable_reason"]) == (False, reason)
    assert made.status_code == 503
    assert made.json()["error"]["code"] == "MODEL_UNAVAILABLE"
    assert "pixelgate[local]" in made.json()["error"]["message"]
    assert "needs the local extra" in server.log_path.read_text()
