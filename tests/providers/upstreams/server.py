"""A real HTTP server on loopback that stands in for a provider's API.

Each provider's fake (`openai.py`, `stability.py`, `bfl.py`, `fal.py` here) subclasses
`FakeUpstream` and answers its routes the way the provider documents them. A test scripts
failures by queueing `Reply`s for a path: queued replies are answered first, in order, then the
fake's own protocol takes over again. Every request is recorded, parsed (JSON or multipart),
for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Part:
    """One multipart part: a plain field has no file name."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode()


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: Message
    body: bytes
    json: Any = None
    parts: dict[str, Part] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", "")).split(";")[0].strip()


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a slow upstream)."""
    drop: bool = False
    """Close the connection without answering (a connection failure)."""

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Reply:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"content-type": "application/json", **_header_names(headers)},
        )


def _header_names(headers: dict[str, str]) -> dict[str, str]:
    """Keyword arguments to header names: `retry_after` → `retry-after`."""
    return {name.replace("_", "-"): value for name, value in headers.items()}


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"content-type: {content_type}\r\n\r\n".encode() + body
    )
    parts: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts[str(name)] = Part(
            data=payload if isinstance(payload, bytes) else b"",
            filename=part.get_filename(),
            content_type=part.get("content-type"),
        )
    return parts


class FakeUpstream:
    """Serves on 127.0.0.1 on a free port from a thread; a context manager."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripted: dict[str, deque[Reply]] = defaultdict(deque)
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                upstream._serve(self)

            def do_POST(self) -> None:
                upstream._serve(self)

            def do_PUT(self) -> None:
                upstream._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with `replies`, in order."""
        with self._lock:
            self._scripted[path].extend(replies)

    def host_file(self, path: str, data: bytes, content_type: str) -> str:
        """Serve `data` at `path` (a result URL); returns its full URL."""
        with self._lock:
            self._files[path] = (data, content_type)
        return self.url + path

    def requests_to(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    def handle(self, request: Received) -> Reply:
        """The provider's own answer to `request`; subclasses speak their protocol."""
        return Reply(404)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        content_type = str(handler.headers.get("content-type", ""))
        parsed: Any = None
        parts: dict[str, Part] = {}
        if content_type.startswith("application/json") and body:
            parsed = json.loads(body)
        elif content_type.startswith("multipart/form-data"):
            parts = parse_multipart(content_type, body)
        request = Received(
            handler.command, split.path, split.query, handler.headers, body, parsed, parts
        )
        with self._lock:
            self.received.append(request)
            scripted = self._scripted[split.path]
            reply = scripted.popleft() if scripted else None
            hosted = self._files.get(split.path)
        if reply is None:
            if hosted is not None and handler.command == "GET":
                reply = Reply(200, hosted[0], {"content-type": hosted[1]})
            else:
                reply = self.handle(request)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            handler.close_connection = True
            return
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing left to answer
