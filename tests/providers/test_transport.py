"""The standard-library transport under httpx (`providers/transport.py`), against a raw HTTP/1.1
server on loopback that counts connections and can misbehave: keep-alive reuse, a connection
the server closed while idle, bodies (chunked, gzip, cut short), timeouts, refused connections,
malformed answers."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from pixelgate.providers.retries import RetryPolicy
from pixelgate.providers.transport import StdlibTransport
from pixelgate.providers.upstream import UpstreamClient

Answer = Callable[[socket.socket, bytes], bool]
"""Writes the answer to one request (its head as read); returns whether to keep the connection."""


def fixed(body: bytes, *, headers: str = "", keep: bool = True) -> Answer:
    def answer(conn: socket.socket, head: bytes) -> bool:
        extra = "" if keep else "Connection: close\r\n"
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}{extra}\r\n".encode()
            + body
        )
        return keep

    return answer


class RawServer:
    """One thread per connection; each request's head (and its Content-Length body) is read,
    then `answer` writes whatever it likes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                if not self.answer(conn, head):
                    return

    def close_idle(self) -> None:
        """The server drops every connection it holds, as one does after its idle timeout."""
        for conn in self.open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        time.sleep(0.05)

    def stop(self) -> None:
        self._listener.close()
        self.close_idle()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def client(**timeout: float) -> httpx.Client:
    return httpx.Client(transport=StdlibTransport(), timeout=httpx.Timeout(5.0, **timeout))


def test_calls_reuse_one_kept_alive_connection(serve: Callable[[Answer], RawServer]) -> None:
    server = serve(fixed(b'{"ok": true}', headers="Content-Type: application/json\r\n"))
    with client() as http:
        for _ in range(3):
            response = http.post(server.url + "/v1/x?a=1", json={"prompt": "a fox"})
            assert response.status_code == 200
            assert response.json() == {"ok": True}
            assert response.headers["content-type"] == "application/json"
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}".encode() in head.lower()
    assert body == b'{"prompt":"a fox"}'


def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[[Answer], RawServer],
) -> None:
    server = serve(fixed(b"first"))
    with client() as http:
        assert http.get(server.url).content == b"first"
        server.close_idle()
        assert http.get(server.url).content == b"first"
    assert server.connections == 2


def test_a_connection_the_server_will_close_is_not_kept(
    serve: Callable[[Answer], RawServer],
) -> None:
    server = serve(fixed(b"bye", keep=False))
    with client() as http:
        assert http.get(server.url).content == b"bye"
        assert http.get(server.url).content == b"bye"
    assert server.connections == 2


def test_a_body_not_read_to_its_end_does_not_leave_its_connection_for_reuse(
    serve: Callable[[Answer], RawServer],
) -> None:
    server = serve(fixed(b"x" * 300_000))
    with client() as http:
        with http.stream("GET", server.url) as response:
            next(response.iter_bytes())  # read a little, then give up
        assert len(http.get(server.url).content) == 300_000
    assert server.connections == 2


def test_chunked_and_gzip_bodies_arrive_decoded(serve: Callable[[Answer], RawServer]) -> None:
    packed = gzip.compress(b"hello " * 1000)

    def chunked(conn: socket.socket, head: bytes) -> bool:
        parts = [packed[:100], packed[100:]]
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
            + b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in parts)
            + b"0\r\n\r\n"
        )
        return True

    server = serve(chunked)
    with client() as http:
        assert http.get(server.url).content == b"hello " * 1000
        assert http.get(server.url).content == b"hello " * 1000
    assert server.connections == 1


def test_multipart_bodies_are_sent_whole(serve: Callable[[Answer], RawServer]) -> None:
    server = serve(fixed(b"{}"))
    with client() as http:
        http.post(
            server.url,
            data={"prompt": "a fox"},
            files={"image": ("a.png", b"\x89PNG", "image/png")},
        )
    request = server.requests[0]
    assert b"multipart/form-data; boundary=" in request
    assert b'name="prompt"\r\n\r\na fox\r\n' in request
    assert b'filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n' in request


def test_a_slow_answer_is_a_read_timeout(serve: Callable[[Answer], RawServer]) -> None:
    def slow(conn: socket.socket, head: bytes) -> bool:
        time.sleep(1.0)
        return False

    server = serve(slow)
    with client(read=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.get(server.url)


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with client() as http, pytest.raises(httpx.ConnectError):
            http.get(f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize(
    "raw",
    [b"", b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
    ids=["hung-up", "garbage", "cut-short"],
)
def test_a_broken_answer_is_a_protocol_error(
    serve: Callable[[Answer], RawServer], raw: bytes
) -> None:
    def broken(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(raw)
        return False

    server = serve(broken)
    with client() as http, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.get(server.url)


def test_upstream_clients_use_it_unless_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def transport_of(upstream: UpstreamClient) -> object:
        return upstream._client._transport

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    plain = UpstreamClient("openai", timeout_seconds=5, retry=RetryPolicy())
    assert isinstance(transport_of(plain), StdlibTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxied = UpstreamClient("openai", timeout_seconds=5, retry=RetryPolicy())
    assert not isinstance(transport_of(proxied), StdlibTransport)
    assert proxied._client._mounts  # httpx mounted the environment's proxy
