"""Slow clients against the real server on a free port, over real sockets (issue 19.6): a
slowloris holds no connection past the header timeout, a stalled body none past the body
timeout, and connections past the cap are closed as they arrive."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from functools import partial

import httpx
import pytest

from tests.conftest import Server

SLOW = 40
"""Slow connections opened at once (the issue saw 80 held for 25 s)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: object) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("slow-clients") / "data"
    instance = Server(
        data,
        models_dir,  # type: ignore[arg-type]
        PIXELGATE_HTTP_HEADER_TIMEOUT_SECONDS="1.5",
        PIXELGATE_HTTP_BODY_TIMEOUT_SECONDS="1.5",
        PIXELGATE_HTTP_MAX_CONNECTIONS=str(SLOW + 10),
    ).start()
    yield instance
    instance.stop()


def open_fds(server: Server) -> int:
    assert server.process is not None
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float, trickle: Callable[[], None]) -> bytes:
    """What the server sent before closing `sock`, which must happen within `seconds` while
    `trickle` keeps sending a little now and then."""
    deadline = time.monotonic() + seconds
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            try:
                trickle()
            except OSError:
                return received  # closed by the server while we wrote
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection was still open after {seconds}s")


def wait_for_fds(server: Server, at_most: int, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while (count := open_fds(server)) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def test_slowloris_connections_are_closed_at_the_header_timeout(server: Server) -> None:
    baseline = open_fds(server)
    socks = [connect(server) for _ in range(SLOW)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    assert open_fds(server) >= baseline + SLOW // 2  # held for now (a loaded machine accepts late)

    started = time.monotonic()
    answers = [closed_within(sock, 8.0, partial(sock.sendall, b"X-a: b\r\n")) for sock in socks]
    took = time.monotonic() - started

    assert took < 8.0  # 1.5 s each, all at once; slack for a loaded machine
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), answers[0]
    for sock in socks:
        sock.close()
    assert wait_for_fds(server, baseline + 2) <= baseline + 2
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # others are served as ever


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with connect(server) as sock:
        assert closed_within(sock, 5.0, lambda: None).startswith(b"HTTP/1.1 408 ")


def test_a_stalled_body_is_closed_at_the_body_timeout(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/inference/images/generate HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer nobody\r\ncontent-type: application/json\r\n"
            b'content-length: 1000\r\n\r\n{"prompt": '
        )
        answer = closed_within(sock, 6.0, lambda: None)
    # either the 408, or the app's own answer (401 for this key) before it closed
    assert answer == b"" or answer.split(b" ", 2)[1] in (b"408", b"401")


def test_a_body_that_keeps_coming_is_not_cut(server: Server) -> None:
    """The body timeout is between chunks: a slow but steady upload goes through."""
    body = b'{"model": "local/tiny", "prompt": "x"}'
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/models HTTP/1.1\r\nHost: x\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        for i in range(0, len(body), 10):  # 4 chunks, 0.7 s apart: longer than one timeout
            time.sleep(0.7)
            sock.sendall(body[i : i + 10])
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 408")


def test_connections_past_the_cap_are_closed_as_they_arrive(server: Server) -> None:
    baseline = open_fds(server)
    socks = [connect(server) for _ in range(SLOW + 30)]
    try:
        time.sleep(0.5)
        assert open_fds(server) <= baseline + SLOW + 10 + 2
    finally:
        for sock in socks:
            sock.close()
    wait_for_fds(server, baseline + 2)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
