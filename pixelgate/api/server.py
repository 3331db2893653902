"""The embedded HTTP server: uvicorn, with the limits it lacks against slow clients.

uvicorn closes a kept-alive connection that stays idle (`timeout_keep_alive`) and answers 503
past `limit_concurrency`, but it waits for ever for a request's headers and body: a client that
sends a header line now and then (slowloris), or stops in the middle of its body, holds a
connection and its file descriptor as long as it likes. The protocol here adds, per connection:

- a **header timeout**: a request's headers must be complete within `header_timeout_seconds`
  of its first byte (of the connection, for the first request), however the bytes trickle in;
- a **body timeout**: while a body is being received, no more than `body_timeout_seconds` may
  pass without a byte of it (as nginx's `client_body_timeout`; time that pixelgate itself
  stops reading, because the application has not consumed the body yet, does not count);
- a **connection cap**: past `max_connections` open connections, a new one is closed at once.

A request cut off by a timeout is answered `408 Request Timeout` (when nothing was answered
yet) and its connection closed. Behind a proxy, the proxy should enforce the same limits
(docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import uvicorn

from pixelgate.settings import Settings

log = logging.getLogger(__name__)

_TIMEOUT_BODY = json.dumps(
    {
        "status": "error",
        "error": {"code": "TIMEOUT", "message": "Request not received in time", "param": None},
    }
).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: int = 5
    max_connections: int = 1000
    max_header_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout_seconds=settings.http_header_timeout_seconds,
            body_timeout_seconds=settings.http_body_timeout_seconds,
            keep_alive_seconds=settings.http_keep_alive_seconds,
            max_connections=settings.http_max_connections,
        )


class _Guarded(asyncio.Protocol):
    """Mixed in before uvicorn's HTTP protocol class (see `protocol_class`)."""

    limits: ClassVar[ConnectionLimits]
    # uvicorn's protocol objects have these
    cycle: Any
    connections: set[Any]
    flow: Any
    transport: asyncio.Transport

    _timer: asyncio.TimerHandle | None = None
    _phase: str = ""
    """What the running timer waits for: "headers", "body", or "" when none runs."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d open", len(self.connections) - 1)
            transport.close()
            return
        self._arm("headers", self.limits.header_timeout_seconds)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if (before is None or before.response_complete) and self._phase != "headers":
            # the first bytes of a request on a kept-alive connection: its headers are timed
            self._arm("headers", self.limits.header_timeout_seconds)
        super().data_received(data)
        cycle = self.cycle
        if cycle is None or (cycle is before and self._phase == "headers"):
            return  # the headers are not complete yet: their deadline stands
        if cycle.more_body and not cycle.response_complete:
            self._arm("body", self.limits.body_timeout_seconds)  # each chunk restarts it
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, ""

    def _expired(self, phase: str) -> None:
        self._timer, self._phase = None, ""
        if self.transport.is_closing():
            return
        if phase == "body" and self.flow.read_paused:
            # pixelgate stopped reading (the application has not taken the body yet): not the
            # client's delay
            self._arm("body", self.limits.body_timeout_seconds)
            return
        cycle = self.cycle
        peer = self.transport.get_extra_info("peername")
        log.info("closed a connection from %s: request %s not received in time", peer, phase)
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def protocol_class(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's own HTTP protocol (httptools where installed, else h11) with the limits."""
    base: type[asyncio.Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    guarded = type("GuardedHTTPProtocol", (_Guarded, base), {"limits": limits})
    return cast(type[asyncio.Protocol], guarded)


def serve(app: Any, settings: Settings) -> None:
    """Run `app` on the settings' host and port until stopped."""
    limits = ConnectionLimits.from_settings(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=5,
        http=protocol_class(limits),
        timeout_keep_alive=limits.keep_alive_seconds,
        # uvicorn's `limit_concurrency` is not used: it answers 503 past the limit but keeps
        # the connections (and their descriptors); the protocol's cap closes them at once
        h11_max_incomplete_event_size=limits.max_header_bytes,
    )
