"""Hosted providers through the real server: their models listed in `GET /v1/models` with
prices and availability, and requests carried to each fake upstream and back."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Server
from tests.helpers import tenant_key
from tests.providers.upstreams.azure_openai import FakeAzureOpenAI
from tests.providers.upstreams.imagen import FakeImagen
from tests.providers.upstreams.images import image_bytes

GENERATE = "/v1/inference/images/generate"
EDIT = "/v1/inference/images/edit"
B64 = {"response_format": "b64_json"}
IMAGEN_MODELS = {
    "google/imagen-3": "0.04",
    "google/imagen-4": "0.04",
    "google/imagen-4-ultra": "0.06",
    "google/imagen-4-fast": "0.02",
    "google/imagen-3-edit": "0.04",
}


@pytest.fixture
def imagen() -> Iterator[FakeImagen]:
    with FakeImagen(api_key="AIza-served") as fake:
        yield fake


def models(client: httpx.Client) -> dict[str, dict[str, Any]]:
    listed = client.get("/v1/models", params={"modality": "image"})
    assert listed.status_code == 200, listed.text
    return {model["id"]: model for model in listed.json()["data"]}


def images_of(response: httpx.Response) -> list[Image.Image]:
    assert response.status_code == 200, response.text
    return [
        Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
        for item in response.json()["data"]["data"]
    ]


def test_imagen_models_are_listed_with_prices_and_available_once_configured(
    make_server: Callable[..., Server], imagen: FakeImagen
) -> None:
    bare = make_server().start()
    with bare.client() as client:
        listed = models(client)
    for model, price in IMAGEN_MODELS.items():
        assert listed[model]["available"] is False
        assert listed[model]["prices"]["default"] == price
    assert "PIXELGATE_GOOGLE_API_KEY" in listed["google/imagen-4"]["unavailable_reason"]
    assert "Vertex AI only" in listed["google/imagen-3-edit"]["unavailable_reason"]
    assert listed["google/imagen-4"]["aliases"] == ["imagen4", "imagen-4.0-generate-001"]

    gemini = make_server(
        PIXELGATE_GOOGLE_API_KEY=imagen.api_key, PIXELGATE_GOOGLE_BASE_URL=imagen.url
    ).start()
    with gemini.client() as client:
        listed = models(client)
    assert [m for m in IMAGEN_MODELS if listed[m]["available"]] == [
        m for m in IMAGEN_MODELS if m != "google/imagen-3-edit"
    ]


def test_imagen_generation_and_editing_through_the_server(
    make_server: Callable[..., Server], imagen: FakeImagen
) -> None:
    server = make_server(
        PIXELGATE_GOOGLE_VERTEX_PROJECT=imagen.project,
        PIXELGATE_GOOGLE_VERTEX_REGION=imagen.region,
        PIXELGATE_GOOGLE_VERTEX_BASE_URL=imagen.url,
        PIXELGATE_GOOGLE_VERTEX_ACCESS_TOKEN=imagen.access_token,
    ).start()
    source = image_bytes(64, 48)
    mask = image_bytes(64, 48, color=(255, 255, 255))
    with server.client() as client:
        assert all(models(client)[m]["available"] for m in IMAGEN_MODELS)
        made = client.post(
            GENERATE,
            json={"model": "imagen4", "prompt": "a fox", "n": 2, "aspect_ratio": "4:3"} | B64,
        )
        edit = {"model": "imagen3-edit", "prompt": "a hat", "input_image": _b64(source)}
        edited = client.post(EDIT, json=edit | {"mask_image": _b64(mask)} | B64)
        refused = client.post(GENERATE, json={"model": "imagen4", "prompt": "a fox", "seed": 1})

    assert [image.size for image in images_of(made)] == [(64, 48), (64, 48)]
    assert [image.size for image in images_of(edited)] == [(64, 48)]
    first, second = imagen.received
    assert first.json["parameters"]["sampleCount"] == 2
    assert first.json["parameters"]["aspectRatio"] == "4:3"
    assert second.path.endswith("imagen-3.0-capability-001:predict")
    references = second.json["instances"][0]["referenceImages"]
    assert [r["referenceType"] for r in references] == ["REFERENCE_TYPE_RAW", "REFERENCE_TYPE_MASK"]
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "seed"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_azure_openai_models_through_the_server(make_server: Callable[..., Server]) -> None:
    deployments = {"dalle3-prod": "dall-e-3", "images-gpt": "gpt-image-1"}
    with FakeAzureOpenAI(key="azure-served", entra_token="t", deployments=deployments) as azure:
        server = make_server(
            PIXELGATE_AZURE_OPENAI_ENDPOINT=azure.url,
            PIXELGATE_AZURE_OPENAI_API_KEY="azure-served",
            PIXELGATE_AZURE_OPENAI_DEPLOYMENTS='{"dall-e-3": "dalle3-prod"}',
        ).start()
        with server.client() as client:
            listed = models(client)
            made = client.post(
                GENERATE, json={"model": "azure-dall-e-3", "prompt": "a fox", "quality": "hd"} | B64
            )

    assert listed["azure/dall-e-3"]["available"] is True
    assert listed["azure/dall-e-3"]["prices"]["hd 1024x1024"] == "0.080"
    assert listed["azure/gpt-image-1"]["available"] is False
    assert "no deployment of gpt-image-1" in listed["azure/gpt-image-1"]["unavailable_reason"]
    assert [image.size for image in images_of(made)] == [(1024, 1024)]
    assert azure.received[0].path == "/openai/deployments/dalle3-prod/images/generations"


def test_another_pixelgate_as_an_openai_compatible_upstream(
    make_server: Callable[..., Server],
) -> None:
    first = make_server().start()
    with first.client() as admin:
        key = tenant_key(admin)
    upstreams = {
        "pg": {
            "base_url": first.url + "/oai/v1",
            "api_key": key,
            "models": [{"name": "local/tiny", "price": "0.002"}],
        },
        "pgv1": {"base_url": first.url + "/v1", "api_key": key, "models": ["local/tiny"]},
    }
    second = make_server(PIXELGATE_OPENAI_COMPATIBLE_UPSTREAMS=json.dumps(upstreams)).start()
    body = {"prompt": "a red circle", "size": "64x64"} | B64
    with second.client() as client:
        listed = models(client)
        made = client.post(GENERATE, json={"model": "pg/local/tiny", "n": 2} | body)
        through_v1 = client.post(GENERATE, json={"model": "pgv1/local/tiny"} | body)
    with first.client(key) as tenant:
        upstream_jobs = tenant.get("/v1/jobs").json()["data"]

    assert listed["pg/local/tiny"]["available"] is True
    assert listed["pg/local/tiny"]["prices"]["default"] == "0.002"
    assert listed["pgv1/local/tiny"]["available"] is True
    assert [image.size for image in images_of(made)] == [(64, 64), (64, 64)]
    assert [image.size for image in images_of(through_v1)] == [(64, 64)]
    assert sorted(job["model"] for job in upstream_jobs) == ["local/tiny", "local/tiny"]
