"""The catalog over HTTP, and the OpenAPI schema."""

from __future__ import annotations

import httpx

from tests.conftest import Server


def test_models_lists_every_catalog_model_with_availability(api: httpx.Client) -> None:
    models = {
        m["id"]: m for m in api.get("/v1/models", params={"modality": "image"}).json()["data"]
    }

    assert models["local/tiny"]["available"] is True
    assert models["pixelgate/shapes"]["available"] is True  # its weights ship with pixelgate
    assert models["openai/dall-e-3"]["available"] is False
    assert "PIXELGATE_OPENAI_API_KEY" in models["openai/dall-e-3"]["unavailable_reason"]
    assert models["openai/dall-e-3"]["aliases"] == ["dall-e-3"]
    assert models["openai/dall-e-3"]["prices"]["hd 1792x1024"] == "0.120"
    schema = models["local/tiny"]["options_schema"]
    assert {"prompt", "width", "height", "num_steps", "seed"} <= set(schema["properties"])
    assert schema["properties"]["width"]["title"] == "Width"
    assert schema["properties"]["width"]["x-unit"] == "px"
    assert models["local/tiny"]["defaults"]["width"] == 64


def test_a_model_by_alias(api: httpx.Client) -> None:
    model = api.get("/v1/models/dall-e-3").json()["data"]
    assert model["id"] == "openai/dall-e-3"
    assert api.get("/v1/models/nope").status_code == 400


def test_openapi_describes_the_native_api(server: Server) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    for path in (
        "/v1/inference/images/generate",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/cancel",
        "/v1/media/{token}",
        "/v1/files/{file_id}",
        "/v1/models",
        "/healthz",
        "/readyz",
    ):
        assert path in schema["paths"], path


def test_every_response_carries_a_request_id(server: Server) -> None:
    response = httpx.get(server.url + "/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert len(httpx.get(server.url + "/healthz").headers["x-request-id"]) == 32
