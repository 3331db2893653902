"""How `UpstreamClient` connects: every provider over one httpx client that keeps connections
alive, and a URL given on a provider's word connected to the address the egress guard checked,
with TLS verified against the host name (SNI and certificate), never against the address.

The servers here are raw HTTP/1.1 on loopback (plain or TLS, with a certificate authority made
for the test), counting connections and noting the name each TLS client asked for."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pixelgate.errors import BackendError
from pixelgate.providers import CancelToken, egress
from pixelgate.providers.egress import EgressGuard
from pixelgate.providers.retries import RetryPolicy
from pixelgate.providers.upstream import UpstreamClient, shared_http

BODY = b'{"ok": true}'


class RawServer:
    """One thread per connection; each request's head (and its Content-Length body) is read and
    answered with `BODY`, keeping the connection unless the request asked to close it. With
    `tls`, connections are TLS and `names` records the server name each client sent."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.names: list[str | None] = []
        self.open: list[socket.socket] = []
        self._tls = tls
        if tls is not None:
            tls.sni_callback = self._note_name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _note_name(self, sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.names.append(name)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self._tls is not None:
            try:
                conn = self._tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused the certificate
                conn.close()
                return
        self.open.append(conn)
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
                fields = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
                }
                length = int(fields.get(b"content-length", b"0"))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head)
                buffer = buffer[length:]
                conn.sendall(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY
                )
                if fields.get(b"connection", b"").lower() == b"close":
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
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(tls: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class Authority:
    """A certificate authority made for one test, and server certificates it signs."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pixelgate test CA")])
        self._name = name
        self.certificate = (
            self._builder(name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )

    def client_context(self) -> ssl.SSLContext:
        """Verifies servers against this authority only (and their certificate's names)."""
        pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return ssl.create_default_context(cadata=pem)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A server holding a certificate for `host`, signed by this authority."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        certificate = (
            self._builder(subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        chain = self._folder / f"{host}.pem"
        chain.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        return context


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


def loopback_client(name: str = "example") -> UpstreamClient:
    # the servers are on loopback: allowed by name, as an operator would allow an internal host
    guard = EgressGuard.create(name, allowed_hosts=["127.0.0.1"])
    return UpstreamClient(name, timeout_seconds=5.0, retry=RetryPolicy(max_retries=0), guard=guard)


def pinning_client(
    resolved: str, monkeypatch: pytest.MonkeyPatch, *, http: httpx.Client | None = None
) -> UpstreamClient:
    """A client whose guard resolves every name to `resolved` and judges it public (the
    servers are on loopback, which the guard refuses), to see where connections go."""
    monkeypatch.setattr(egress, "why_not_public", lambda address: None)
    guard = EgressGuard.create("p", resolver=lambda host, port: [resolved])
    return UpstreamClient(
        "p", timeout_seconds=5.0, retry=RetryPolicy(max_retries=0), guard=guard, http=http
    )


def test_every_provider_shares_one_client_and_its_kept_alive_connections(
    serve: Callable[..., RawServer],
) -> None:
    server = serve()
    openai, stability = loopback_client("openai"), loopback_client("stability")
    for upstream in (openai, stability, openai):
        response = upstream.send(
            "POST", server.url + "/v1/x?a=1", cancel=CancelToken(), json_body={"prompt": "a fox"}
        )
        assert (response.status, response.content) == (200, BODY)
    assert openai._client is stability._client is shared_http()
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /v1/x?a=1 HTTP/1.1\r\n")


def test_a_connection_the_server_closed_while_idle_is_not_used_for_a_post(
    serve: Callable[..., RawServer],
) -> None:
    """A POST over a connection the server had closed would break after it was sent, and is
    never sent again (it may have been billed): the pool must notice the closed one first."""
    server = serve()
    upstream = loopback_client()
    upstream.send("POST", server.url, cancel=CancelToken(), json_body={})
    server.close_idle()
    assert upstream.send("POST", server.url, cancel=CancelToken(), json_body={}).ok
    assert server.connections == 2


def test_a_pinned_tls_request_goes_to_the_checked_address_and_verifies_the_host_name(
    serve: Callable[..., RawServer], authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is one no real resolver knows: the fetch succeeds only by connecting to the
    guard's answer, and the certificate (issued for the name, not for 127.0.0.1) passes only
    when checked against the name."""
    server = serve(authority.server_context("files.pinned.invalid"))
    with httpx.Client(verify=authority.client_context()) as http:
        upstream = pinning_client("127.0.0.1", monkeypatch, http=http)
        url = f"https://files.pinned.invalid:{server.port}/image.png"
        assert upstream.fetch_result(url, cancel=CancelToken()) == BODY
        assert upstream.fetch_result(url, cancel=CancelToken()) == BODY

    assert server.names == ["files.pinned.invalid", "files.pinned.invalid"]
    head = server.requests[0].lower()
    assert head.startswith(b"get /image.png http/1.1\r\n")
    assert f"host: files.pinned.invalid:{server.port}".encode() in head
    # a pinned connection is not kept: the next name at this address gets its own TLS session
    assert server.connections == 2


def test_a_certificate_for_another_name_is_refused(
    serve: Callable[..., RawServer], authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(authority.server_context("someone-else.invalid"))
    with httpx.Client(verify=authority.client_context()) as http:
        upstream = pinning_client("127.0.0.1", monkeypatch, http=http)
        with pytest.raises(BackendError, match="Could not reach"):
            upstream.fetch_result(
                f"https://files.pinned.invalid:{server.port}/image.png", cancel=CancelToken()
            )
    assert server.requests == []


def test_through_a_proxy_the_request_names_the_host_not_the_address(
    serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy configured in the environment connects by name: the URL is checked all the same,
    and sent as it is."""
    proxy = serve()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with httpx.Client() as http:  # reads the environment's proxies when made
        upstream = pinning_client("93.184.216.34", monkeypatch, http=http)
        upstream.fetch_result("http://files.example.invalid/image.png", cancel=CancelToken())
    assert proxy.requests[0].startswith(b"GET http://files.example.invalid/image.png HTTP/1.1")
