"""Model weights live in one cache that every data directory shares (issue 22): a server over a
data directory it has never seen finds background removal and the safety classifier there."""

from __future__ import annotations

from base64 import b64decode
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import GENERATE
from tests.installed_weights import rembg_home, safety_model_file
from tests.rembg_server import disc_picture, is_cut_out

pytestmark = pytest.mark.timeout(120)


def test_a_server_on_a_fresh_data_dir_finds_the_cached_models(
    tmp_path: Path, models_dir: Path
) -> None:
    cache = tmp_path / "cache"  # XDG_CACHE_HOME: the cache is <it>/pixelgate/models
    weights = cache / "pixelgate" / "models"
    (weights / "rembg").mkdir(parents=True)
    (weights / "safety").mkdir()
    (weights / "rembg" / "u2netp.onnx").symlink_to(rembg_home() / "u2netp.onnx")
    (weights / "safety" / "open-nsfw.onnx").symlink_to(safety_model_file())
    server = Server(
        tmp_path / "fresh-data",
        models_dir,
        XDG_CACHE_HOME=str(cache),
        PIXELGATE_SAFETY_THRESHOLD="1.0",  # every output is scored: a missing model fails it
    )
    for name in ("PIXELGATE_MODELS_DIR", "PIXELGATE_REMBG_HOME", "PIXELGATE_SAFETY_MODEL_FILE"):
        server.env.pop(name, None)
    server.start()
    try:
        with server.client() as api:
            cut = api.post(
                "/v1/inference/images/remove-background",
                files={"image": ("disc.png", disc_picture(), "image/png")},
                data={"response_format": "b64_json"},
            )
            assert cut.status_code == 200, cut.text
            [image] = cut.json()["data"]["data"]
            assert is_cut_out(Image.open(BytesIO(b64decode(image["b64_json"]))))

            made = api.post(
                GENERATE,
                json={"model": "pixelgate/shapes", "prompt": "a red circle", "seed": 1},
            )
            assert made.status_code == 200, made.text  # scored by the cached classifier
    finally:
        server.stop()
    assert not (tmp_path / "fresh-data" / "models").exists()
