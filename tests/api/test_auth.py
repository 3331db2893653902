"""Every route but health and media links needs a key."""

from __future__ import annotations

import stat

import httpx
import pytest

from tests.conftest import Server

PROTECTED = [
    ("POST", "/v1/inference/images/generate"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/job_x"),
    ("GET", "/v1/jobs/job_x/events"),
    ("POST", "/v1/jobs/job_x/cancel"),
    ("GET", "/v1/files/file_x"),
    ("GET", "/v1/files/file_x/content"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/local/tiny"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_key_is_401(server: Server, method: str, path: str) -> None:
    response = httpx.request(method, server.url + path, json={})

    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "UNAUTHORIZED",
            "message": "Missing API key: send the header 'Authorization: Bearer <key>'",
            "param": None,
        },
    }


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic abc", "Bearer", "pg_test_admin_key"])
def test_a_wrong_key_is_401(server: Server, header: str) -> None:
    response = httpx.get(server.url + "/v1/models", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_health_needs_no_key(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok", "checks": {}}
    ready = httpx.get(server.url + "/readyz").json()
    assert ready == {
        "status": "ok",
        "checks": {"database": "ok", "storage": "ok", "worker": "ok", "models": "ok"},
    }


def test_first_start_creates_an_admin_key_shown_once_and_kept_private(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server()
    del server.env["PIXELGATE_ADMIN_KEY"]
    server.start()
    key_file = server.data_dir / "admin_key"
    key = key_file.read_text().strip()
    assert key.startswith("pg_")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key in server.log_path.read_text()

    with server.client(key) as api:
        assert api.get("/v1/models").status_code == 200
    server.stop()
    server.start()
    assert server.log_path.read_text().count(key) == 1  # shown once, not on every start
    assert key_file.read_text().strip() == key


def test_admin_key_from_the_environment_replaces_an_earlier_one(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server()
    server.start()
    server.stop()
    server.env["PIXELGATE_ADMIN_KEY"] = "pg_second_key_abcdefghijklmnop"
    server.start()

    assert (
        httpx.get(
            server.url + "/v1/models",
            headers={"Authorization": "Bearer pg_second_key_abcdefghijklmnop"},
        ).status_code
        == 200
    )
    old = httpx.get(
        server.url + "/v1/models", headers={"Authorization": f"Bearer {server.admin_key}"}
    )
    assert old.status_code == 401
    assert "revoked" in old.json()["error"]["message"]


def test_the_key_never_appears_in_the_server_log(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server().start()
    with server.client() as api:
        api.get("/v1/models")
        api.get("/v1/jobs/job_x")
    assert server.admin_key not in server.log_path.read_text()
