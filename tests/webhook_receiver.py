"""A webhook receiver on loopback: a real HTTP server that records every POST (headers and raw
body) and answers 204, or fails the first `failures` tries of each delivery with 500; a slow one
holds each POST for `hold` seconds (or until `release`), counting how many it holds at once."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
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
    def __init__(self, *, failures: int = 0, port: int = 0, hold: float = 0.0) -> None:
        self.failures = failures
        """Tries of each delivery (by webhook-id) answered 500 before one is taken."""
        self.hold = hold
        """Seconds each POST waits for its answer, unless `release` came first."""
        self.most_at_once = 0
        """The most POSTs held at one time."""
        self.most_of_one_job = 0
        """The most POSTs about one job held at one time."""
        self._released = threading.Event()
        self._held: list[str] = []
        self.received: list[Received] = []
        """Every POST, the failed tries too, in the order they came."""
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                job = receiver._job_of(body)
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body))
                    seen = receiver._tries.get(headers.get("webhook-id", ""), 0)
                    receiver._tries[headers.get("webhook-id", "")] = seen + 1
                    receiver._held.append(job)
                    receiver.most_at_once = max(receiver.most_at_once, len(receiver._held))
                    receiver.most_of_one_job = max(
                        receiver.most_of_one_job, receiver._held.count(job)
                    )
                receiver._released.wait(receiver.hold)
                with receiver._lock:
                    receiver._held.remove(job)
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
        self.release()
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def _job_of(body: bytes) -> str:
        try:
            return str(json.loads(body)["data"]["id"])
        except (ValueError, KeyError, TypeError):
            return ""

    def release(self) -> None:
        """Answer the POSTs held now and every later one at once."""
        self._released.set()

    @property
    def held(self) -> int:
        """POSTs held now."""
        with self._lock:
            return len(self._held)

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


def hooked_batch(
    job: dict[str, Any], url: str, count: int, *, label: str, events: list[str] | None = None
) -> dict[str, Any]:
    """A batch request of `count` jobs like `job` (prompts `label 0`, ...), each with a webhook
    to `url`, for `events` (or the default ones)."""
    wanted = {} if events is None else {"webhook_events": events}
    return {
        "requests": [
            {**job, "prompt": f"{label} {index}", "webhook": url, **wanted}
            for index in range(count)
        ]
    }


def statuses_by_job(taken: list[Received]) -> dict[str, list[str]]:
    """Job id → the statuses its deliveries carried, in the order they came."""
    by_job: dict[str, list[str]] = defaultdict(list)
    for item in taken:
        by_job[item.document["data"]["id"]].append(item.document["data"]["status"])
    return dict(by_job)
