"""A webhook receiver on loopback: a real HTTP server that records every POST (headers and raw
body) and answers 204, or fails the first `failures` tries of each delivery with 500."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class WebhookReceiver:
    def __init__(self, *, failures: int = 0, port: int = 0) -> None:
        self.failures = failures
        """Tries of each delivery (by webhook-id) answered 500 before one is taken."""
        self.received: list[Received] = []
        """Every POST, the failed tries too, in the order they came."""
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body))
                    seen = receiver._tries.get(headers.get("webhook-id", ""), 0)
                    receiver._tries[headers.get("webhook-id", "")] = seen + 1
                self.send_response(500 if seen < receiver.failures else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[Received]:
        """The deliveries taken (each delivery's last try), in the order they came."""
        with self._lock:
            received = list(self.received)
        last: dict[str, Received] = {}
        for item in received:
            last[item.webhook_id] = item
        taken = [item for item in received if self._is_taken(item, last)]
        return taken

    def _is_taken(self, item: Received, last: dict[str, Received]) -> bool:
        return last[item.webhook_id] is item and self._tries[item.webhook_id] > self.failures

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        """The first `count` deliveries taken, waiting for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            taken = self.accepted()
            if len(taken) >= count:
                return taken
            time.sleep(0.05)
        raise AssertionError(f"{len(self.accepted())} deliveries of {count} came: {self.received}")
