"""The product's source documents' own examples, pointed at pixelgate, run unchanged: the SDK
seed's calls from Python (tests/e2e/seeds/sdk_seed.py) and TypeScript
(clients/typescript/test/seed.ts), the gateway seed's body on the native route and the OpenAI
surface, and the serverless seed's body. Hosted models answer from loopback fakes of OpenAI and
Stability AI that record what they receive; background removal runs rembg's u2netp."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api.openai.conftest import png
from tests.conftest import Server
from tests.providers.upstreams.openai import GENERATIONS, FakeOpenAI
from tests.providers.upstreams.stability import CORE, FakeStability
from tests.rembg_server import disc_picture, is_cut_out, rembg_server

ROOT = Path(__file__).resolve().parents[2]
TYPESCRIPT = ROOT / "clients" / "typescript"
OPENAI_KEY = "sk-seed-openai-0123456789"
STABILITY_KEY = "sk-seed-stability-0123456789"


@dataclass(frozen=True)
class Upstreams:
    openai: FakeOpenAI
    stability: FakeStability


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with FakeOpenAI(OPENAI_KEY) as openai, FakeStability(STABILITY_KEY) as stability:
        yield Upstreams(openai, stability)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, upstreams: Upstreams
) -> Iterator[Server]:
    instance = rembg_server(
        tmp_path_factory.mktemp("seeds") / "data",
        models_dir,
        PIXELGATE_OPENAI_BASE_URL=upstreams.openai.url,
        PIXELGATE_OPENAI_API_KEY=OPENAI_KEY,
        PIXELGATE_STABILITY_BASE_URL=upstreams.stability.url,
        PIXELGATE_STABILITY_API_KEY=STABILITY_KEY,
    )
    yield instance
    instance.stop()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(disc_picture("JPEG"))
    return path


def run(command: list[str], cwd: Path, server: Server, photo: Path) -> dict[str, Any]:
    done = subprocess.run(
        command,
        cwd=cwd,
        env={
            **os.environ,
            "PIXELGATE_URL": server.url,
            "PIXELGATE_API_KEY": server.admin_key,
            "PHOTO": str(photo),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def fetched(url: str) -> Image.Image:
    response = httpx.get(url)  # a signed pixelgate link: no key needed
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def check_sdk_example(seen: dict[str, Any], server: Server, upstreams: Upstreams) -> None:
    """What the SDK seed's example made, and what reached each provider."""
    assert all(str(url).startswith(server.url + "/v1/media/") for url in seen.values())
    hero = upstreams.openai.requests_to(GENERATIONS)[-1].json
    assert (hero["model"], hero["size"], hero["quality"]) == ("dall-e-3", "1024x1792", "hd")
    assert is_cut_out(fetched(seen["cutout"]))
    poster = {
        name: part.text for name, part in upstreams.stability.requests_to(CORE)[-1].parts.items()
    }
    assert poster["aspect_ratio"] == "16:9"
    assert poster["negative_prompt"] == "text, watermark"
    assert poster["style_preset"] == "photographic"
    assert poster["output_format"] == "webp"
    assert fetched(seen["poster"]).format == "WEBP"


def test_the_sdk_seeds_example_in_python(
    server: Server,
    photo: Path,
    upstreams: Upstreams,
) -> None:
    seen = run([sys.executable, str(ROOT / "tests" / "e2e" / "seeds" / "sdk_seed.py")], ROOT,
               server, photo)  # fmt: skip

    check_sdk_example(seen, server, upstreams)


@pytest.mark.skipif(shutil.which("node") is None, reason="node not found: run scripts/setup")
def test_the_sdk_seeds_example_in_typescript(
    server: Server,
    photo: Path,
    upstreams: Upstreams,
) -> None:
    tsc = TYPESCRIPT / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "no clients/typescript/node_modules: run scripts/setup"
    subprocess.run([str(tsc), "-p", "."], cwd=TYPESCRIPT, check=True, timeout=180)

    seen = run(["node", "dist/test/seed.js"], TYPESCRIPT, server, photo)

    check_sdk_example(seen, server, upstreams)


GATEWAY_BODY = {
    "model": "dall-e-3",
    "prompt": "A flat illustration of a rocket launch",
    "n": 1,
    "size": "1024x1024",
    "quality": "standard",
    "response_format": "url",
    "metadata": {"feature": "hero-banner"},
}


@pytest.mark.parametrize("model", ["dall-e-3", "local/tiny", "stable-image-core"])
@pytest.mark.parametrize("path", ["/v1/inference/images/generate", "/v1/images/generations"])
def test_the_gateway_seeds_body_with_any_model(server: Server, path: str, model: str) -> None:
    with server.client() as client:
        response = client.post(path, json={**GATEWAY_BODY, "model": model})

    assert response.status_code == 200, response.text
    body = response.json()
    [item] = body["data"]["data"] if "status" in body else body["data"]
    assert fetched(item["url"]).size[0] > 0


def png_b64(size: tuple[int, int], color: tuple[int, int, int]) -> str:
    return base64.b64encode(png(size, color)).decode()


def test_the_serverless_seeds_bodies(server: Server) -> None:
    generate = {
        "model_name": "local/tiny",
        "prompt": "a red circle",
        "negative_prompt": "blurry",
        "width": 96,
        "height": 64,
        "num_steps": 4,
        "guidance_scale": 5.0,
        "seed": 42,
        "response_format": "b64_json",
    }
    inpaint = {
        **generate,
        "prompt": "a blue square",
        "input_image": png_b64((96, 64), (200, 40, 40)),
        "mask_image": png_b64((96, 64), (255, 255, 255)),
    }
    with server.client() as client:
        made = client.post("/v1/inference/images/generate", json=generate)
        edited = client.post("/v1/inference/images/edit", json=inpaint)

    for response in (made, edited):
        assert response.status_code == 200, response.text
        [item] = response.json()["data"]["data"]
        assert item["seed"] == 42
        assert Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size == (96, 64)
