"""`GET /v1/models` serves the native API and the `openai` SDK with one body; `/oai/v1/models`
is OpenAI's shape alone."""

from __future__ import annotations

import httpx
import openai

from tests.conftest import ADMIN_KEY, Server


def test_models_list_contains_local_and_hosted_models(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}

    assert models["local/tiny"].object == "model"
    assert models["local/tiny"].owned_by == "diffusers"
    assert models["openai/dall-e-3"].owned_by == "openai"
    assert models["local/tiny"].created > 0


def test_the_shared_path_is_both_shapes_at_once(gateway: Server) -> None:
    body = httpx.get(
        gateway.url + "/v1/models", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ).json()

    assert (body["status"], body["object"]) == ("ok", "list")
    tiny = next(model for model in body["data"] if model["id"] == "local/tiny")
    assert {"object", "created", "owned_by", "available", "options_schema"} <= set(tiny)


def test_the_oai_mount_lists_what_can_run_in_openais_shape(gateway: Server) -> None:
    body = httpx.get(
        gateway.url + "/oai/v1/models", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ).json()

    assert set(body) == {"object", "data"}
    ids = {model["id"] for model in body["data"]}
    assert {"local/tiny", "openai/dall-e-2", "openai/dall-e-3", "openai/gpt-image-1"} <= ids
    assert "bfl/flux-pro-1.1" not in ids  # no Black Forest Labs key here
    assert all(set(model) == {"id", "object", "created", "owned_by"} for model in body["data"])


def test_retrieve_a_model_by_alias_on_the_oai_mount(gateway: Server) -> None:
    with openai.OpenAI(api_key=ADMIN_KEY, base_url=gateway.url + "/oai/v1") as sdk:
        model = sdk.models.retrieve("dall-e-3")

    assert (model.id, model.owned_by) == ("openai/dall-e-3", "openai")


def test_openapi_lists_the_headers_each_openai_route_reads(gateway: Server) -> None:
    schema = httpx.get(gateway.url + "/openapi.json").json()
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations"):
        operation = schema["paths"][path]["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers == {"prefer", "idempotency-key", "cache-control"}, path
        assert operation["security"] == [{"bearer": []}], path  # the key
    edits = schema["paths"]["/v1/images/edits"]["post"]  # its multipart body is kept beside them
    assert "multipart/form-data" in edits["requestBody"]["content"]
