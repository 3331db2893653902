"""Signed media links: unforgeable, expiring; files outlive links."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Server
from tests.helpers import generate


def _link(api: httpx.Client) -> tuple[str, str]:
    [item] = generate(api).json()["data"]["data"]
    return item["url"], item["file_id"]


def test_a_tampered_signature_is_refused(api: httpx.Client) -> None:
    url, _ = _link(api)
    flipped = url[:-1] + ("A" if url[-1] != "A" else "B")

    response = httpx.get(flipped)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


def test_a_link_cannot_be_pointed_at_another_file_or_extended(api: httpx.Client) -> None:
    url, _ = _link(api)
    _, other_file = _link(api)
    base, token = url.rsplit("/", 1)
    file_id, expires, signature = token.split(".")

    for forged in (
        f"{other_file}.{expires}.{signature}",
        f"{file_id}.{int(expires) + 3600}.{signature}",
        f"{file_id}.{expires}",
        "garbage",
    ):
        assert httpx.get(f"{base}/{forged}").status_code == 403


def test_an_unknown_media_path_is_not_found(server: Server) -> None:
    assert httpx.get(f"{server.url}/v1/media/").status_code == 404


def test_links_expire_but_the_file_outlives_them(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server(PIXELGATE_MEDIA_LINK_TTL_SECONDS="1").start()
    with server.client() as api:
        url, file_id = _link(api)
        assert httpx.get(url).status_code == 200
        time.sleep(2.1)

        expired = httpx.get(url)

        assert expired.status_code == 403
        assert "expired" in expired.json()["error"]["message"]
        fresh = api.get(f"/v1/files/{file_id}").json()["data"]["url"]
        assert httpx.get(fresh).status_code == 200


def test_links_survive_a_restart(make_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = make_server().start()
    with server.client() as api:
        url, _ = _link(api)
    before = httpx.get(url).content
    port = server.port
    server.stop()
    server.start()
    assert server.port == port
    assert httpx.get(url).content == before
