"""Pure ASGI middleware: request ids, access logs, and the request-size limit."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelgate.errors import PayloadTooLarge
from pixelgate.logs import request_id
from pixelgate.metrics import Metrics

log = logging.getLogger("pixelgate.access")


class RequestContext:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        current = incoming or uuid.uuid4().hex
        token = request_id.set(current)
        started = time.perf_counter()
        status = 500
        # POSTs in progress tell the local model worker whether more jobs may be on their way
        posting = _metrics(scope) if scope["method"] == "POST" else None
        if posting is not None:
            posting.posts_in_progress += 1

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", current.encode()),
                ]
            await send(message)

        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await _too_large(send_with_id, self.max_body_bytes)
                return
            await self.app(scope, _limited(receive, self.max_body_bytes), send_with_id)
        finally:
            if posting is not None:
                posting.posts_in_progress -= 1
            seconds = time.perf_counter() - started
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            _observe(scope, status, seconds)
            request_id.reset(token)


def _metrics(scope: Scope) -> Metrics | None:
    runtime = getattr(scope["app"].state, "runtime", None)
    return None if runtime is None else runtime.metrics


def _observe(scope: Scope, status: int, seconds: float) -> None:
    """Count the request under its route template (`/v1/jobs/{job_id}`), never its raw path,
    so metrics stay bounded."""
    route = scope.get("route")
    template = getattr(route, "path", None) or "unmatched"
    metrics = _metrics(scope)
    if metrics is not None:
        metrics.observe_request(scope["method"], template, status, seconds)


def _limited(receive: Receive, limit: int) -> Receive:
    """Count a body sent without Content-Length, and stop reading past the limit."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes")
        return message

    return wrapped


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps(
        {
            "status": "error",
            "error": {
                "code": "PAYLOAD_TOO_LARGE",
                "message": f"The request body is larger than {limit} bytes",
                "param": None,
            },
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
