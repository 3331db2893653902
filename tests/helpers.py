"""Small helpers the tests share."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.conftest import Server

GENERATE = "/v1/inference/images/generate"
EDIT = "/v1/inference/images/edit"
SLOW = {"model": "local/tiny", "num_steps": 200, "width": 128, "height": 128}
"""A local/tiny request that runs for many seconds on 2 CPU cores: for tests that cancel it."""
MEDIUM = {"model": "local/tiny", "num_steps": 60, "width": 64, "height": 64}
"""Long enough to be seen running (a few seconds), short enough to be run to the end."""


REQUIRED_BESIDE_A_PROMPT: dict[str, dict[str, object]] = {
    "stability-search-and-replace": {"search_prompt": "a dog"},
    "stability-outpaint": {"left": 64},
}
"""What a family needs besides a prompt (search-and-replace what to find, outpainting a side)."""


def generate(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post(GENERATE, json={"model": "local/tiny", "prompt": "a red circle", **body})


def submit(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = generate(client, **{"async": True, **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()["data"]
    return job


def tenant_key(admin: httpx.Client) -> str:
    """A key (generate, read) of a new tenant of its own: an empty history."""
    tenant_id = "t-" + secrets.token_hex(6)
    created = admin.post("/v1/admin/tenants", json={"id": tenant_id, "name": tenant_id})
    assert created.status_code == 201, created.text
    key = admin.post("/v1/admin/keys", json={"tenant_id": tenant_id, "name": "app"})
    assert key.status_code == 201, key.text
    return str(key.json()["data"]["key"])


def make_tenant(admin: httpx.Client, tenant_id: str, **fields: Any) -> httpx.Client:
    """A tenant with a generate+read key, and a client that uses the key."""
    created = admin.post("/v1/admin/tenants", json={"id": tenant_id, "name": tenant_id, **fields})
    assert created.status_code == 201, created.text
    key = admin.post("/v1/admin/keys", json={"tenant_id": tenant_id, "name": "app"})
    assert key.status_code == 201, key.text
    return httpx.Client(
        base_url=str(admin.base_url),
        headers={"Authorization": f"Bearer {key.json()['data']['key']}"},
        timeout=60,
    )


def start_with_a_broken_model(root: Path, models_dir: Path) -> Server:
    """A server whose catalog adds `acme/broken`: weights that are there but cannot load, a
    real failure of a local model."""
    broken = models_dir / "acme--broken"
    broken.mkdir(exist_ok=True)
    (broken / "model_index.json").write_text('{"_class_name": "NoSuchPipeline"}')
    catalog = root / "catalog.toml"
    catalog.write_text(
        '[[models]]\nid = "acme/broken"\nprovider = "diffusers"\nfamily = "diffusion"\n'
        'source = "acme/broken"\n'
        "defaults = { width = 64, height = 64, num_steps = 2, guidance_scale = 1.0 }\n"
    )
    return Server(root / "data", models_dir, PIXELGATE_CATALOG_FILE=str(catalog)).start()


def wait_for(
    client: httpx.Client, job_id: str, *states: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()["data"]
        if job["status"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {states}")


def read_events(
    client: httpx.Client,
    job_id: str,
    *,
    into: list[tuple[str, dict[str, Any], str | None]] | None = None,
    headers: dict[str, str] | None = None,
) -> list[tuple[str, dict[str, Any], str | None]]:
    """The whole SSE stream of a job, as (event, data, id) tuples; appended to `into` as each
    arrives, when given."""
    events: list[tuple[str, dict[str, Any], str | None]] = [] if into is None else into
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if "event" in fields:
                    events.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
                fields = {}
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def alpha_at(image: Image.Image, xy: tuple[int, int]) -> int:
    """The opacity of one pixel of an RGBA image, 0 to 255."""
    value = image.getchannel("A").getpixel(xy)
    assert isinstance(value, int)
    return value


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error of a 400 answer in the native envelope: `code`, `message`, `param`."""
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float = 90
) -> None:
    """Wait until the server at `url` answers /readyz with 200; fail with its log's tail when
    its process ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready:\n{log.read_text()[-3000:]}")
