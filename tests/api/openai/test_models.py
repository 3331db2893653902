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


def test_both_surfaces_list_one_set_of_models(gateway: Server, admin: httpx.Client) -> None:
    """The OpenAI list is the native list less the models that cannot run here; a tenant's
    deny list hides a model from both, and from a lookup on either."""
    created = admin.post(
        "/v1/admin/tenants",
        json={"id": "oai-lists", "name": "lists", "deny_models": ["openai/dall-e-2"]},
    )
    assert created.status_code == 201, created.text
    key = admin.post("/v1/admin/keys", json={"tenant_id": "oai-lists", "name": "app"})
    headers = {"Authorization": f"Bearer {key.json()['data']['key']}"}

    native = httpx.get(gateway.url + "/v1/models", headers=headers).json()["data"]
    oai = httpx.get(gateway.url + "/oai/v1/models", headers=headers).json()["data"]
    hidden_native = httpx.get(gateway.url + "/v1/models/openai/dall-e-2", headers=headers)
    hidden_oai = httpx.get(gateway.url + "/oai/v1/models/dall-e-2", headers=headers)

    assert [model["id"] for model in oai] == [m["id"] for m in native if m["available"]]
    assert any(not model["available"] for model in native)  # no Black Forest Labs key here
    assert "openai/dall-e-2" not in {model["id"] for model in native}
    assert (hidden_native.status_code, hidden_oai.status_code) == (403, 403)
