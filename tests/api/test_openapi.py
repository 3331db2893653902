"""The OpenAPI document: readable, unique operation ids, the bearer scheme where the server asks
for a key, and docs pages whose assets pixelgate serves itself."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from pixelgate.api.app import ROUTERS, create_app
from pixelgate.api.openapi import operation_id
from pixelgate.settings import load_settings
from tests.conftest import Server


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("openapi")
    settings = load_settings(None, data_dir=data_dir, admin_key="pg_test_app_key_0123456789")
    return create_app(settings).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_operation_ids_are_tag_and_name(document: dict[str, Any]) -> None:
    ids = {f"{method} {path}": op["operationId"] for method, path, op in operations(document)}

    assert {
        "POST /v1/inference/images/generate": "images_generate",
        "POST /v1/inference/images/edit": "images_edit",
        "POST /v1/inference/images/remove-background": "images_remove_background",
        "GET /v1/jobs": "jobs_list",
        "GET /v1/jobs/{job_id}": "jobs_get",
        "GET /v1/jobs/{job_id}/events": "jobs_events",
        "POST /v1/jobs/{job_id}/cancel": "jobs_cancel",
        "GET /v1/models": "models_list",
        "POST /v1/images/generations": "openai_create_image",
    }.items() <= ids.items()
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", name) for name in ids.values()), ids
    assert len(set(ids.values())) == len(ids)
    for method, path, op in operations(document):
        assert op["tags"], f"{method} {path} has no tag"


def test_every_route_gets_its_own_id_on_every_mount() -> None:
    """The OpenAI routes are mounted twice (`/v1`, and `/oai/v1` out of the document)."""
    routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    ids = [operation_id(route) for route in routes]

    assert len(set(ids)) == len(ids), sorted(ids)
    assert {"openai_create_image", "oai_create_image", "oai_list_models"} <= set(ids)


def test_the_bearer_scheme_is_declared(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]

    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, op in operations(document):
        names = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
        assert "authorization" not in names, f"{method} {path}: the key is the bearer scheme"


def test_the_document_asks_for_a_key_exactly_where_the_server_does(
    document: dict[str, Any], server: Server
) -> None:
    """Each operation, called without a key: 401 (pixelgate's own error) where the document
    requires the bearer scheme, anything else where it does not."""
    mismatched = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path, op in operations(document):
            url = re.sub(r"\{[^}]+\}", "x", path)
            response = client.request(method, url, json={} if method != "GET" else None)
            secured = op.get("security") == [{"bearer": []}]
            if (response.status_code == 401) != secured:
                mismatched.append((method, path, response.status_code, secured))
    assert mismatched == []
    assert {path for _, path, op in operations(document) if "security" not in op} == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/media/{token}",
    }


def test_the_docs_pages_load_their_assets_from_pixelgate(server: Server) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(server.url + page).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
            assert httpx.get(server.url + asset).status_code == 200, asset
