"""Retries and transport errors, against a small misbehaving HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import pixelgate
from pixelgate.errors import APIConnectionError, ModelUnavailable, RateLimited
from pixelgate.sdk.retries import RetryPolicy, parse_retry_after
from tests.conftest import free_port

MODEL = {
    "id": "local/tiny",
    "provider": "diffusers",
    "family": "diffusion",
    "modality": "image",
    "capabilities": ["generate"],
    "aliases": [],
    "description": "",
    "available": True,
    "limits": {},
    "defaults": {},
    "prices": {},
    "options_schema": {},
}


class Script:
    """Answers each request with the next scripted (status, headers, body): a JSON body, or
    raw bytes sent as they are (a `Content-Length` header among the headers wins)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], dict[str, Any] | bytes]] = []
        self.requests: list[tuple[str, str, float]] = []
        self.last_event_ids: list[str | None] = []


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, "param": None}}


@pytest.fixture
def flaky() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.requests.append((self.command, self.path, time.monotonic()))
            script.last_event_ids.append(self.headers.get("Last-Event-ID"))
            status, headers, body = script.answers.pop(0)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers = {
                "Content-Type": "application/json",
                "Content-Length": str(len(payload)),
                **headers,
            }
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = answer
        do_POST = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def test_429_is_retried_after_the_time_the_server_asks(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.answers = [
        (429, {"Retry-After": "1"}, error_body("RATE_LIMITED", "slow down")),
        (200, {}, {"status": "ok", "data": [MODEL]}),
    ]

    with pixelgate.Client(base_url=url, api_key="k") as client:
        models = client.models.list()

    assert [model.id for model in models] == ["local/tiny"]
    assert len(script.requests) == 2
    assert script.requests[1][2] - script.requests[0][2] >= 1.0


JOB = {
    "id": "job_1",
    "task": "generate",
    "model": "local/tiny",
    "status": "queued",
    "created_at": "2025-01-01T00:00:00+00:00",
    "attempts": 0,
    "cancel_requested": False,
}


def test_429_on_generate_is_retried_too(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    job = JOB
    script.answers = [
        (429, {"Retry-After": "0"}, error_body("RATE_LIMITED", "slow down")),
        (202, {}, {"status": "ok", "data": job}),
    ]

    with pixelgate.Client(base_url=url, api_key="k") as client:
        submitted = client.images.submit(model="local/tiny", prompt="x")

    assert submitted.id == "job_1"
    assert [method for method, _, _ in script.requests] == ["POST", "POST"]


def test_rate_limited_carries_retry_after_when_retries_run_out(
    flaky: tuple[str, Script],
) -> None:
    url, script = flaky
    script.answers = [(429, {"Retry-After": "7"}, error_body("RATE_LIMITED", "slow down"))]

    with (
        pixelgate.Client(base_url=url, api_key="k", max_retries=0) as client,
        pytest.raises(RateLimited) as caught,
    ):
        client.models.list()

    assert caught.value.retry_after == 7.0
    assert caught.value.message == "slow down"


def test_a_gateway_error_is_retried_for_a_read(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.answers = [
        (503, {"Retry-After": "0"}, error_body("MODEL_UNAVAILABLE", "busy")),
        (200, {}, {"status": "ok", "data": [MODEL]}),
    ]

    with pixelgate.Client(base_url=url, api_key="k") as client:
        assert [model.id for model in client.models.list()] == ["local/tiny"]
    assert len(script.requests) == 2


def test_a_gateway_error_is_never_retried_for_generate(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.answers = [
        (503, {"Retry-After": "0"}, error_body("MODEL_UNAVAILABLE", "busy")),
        (200, {}, {"status": "ok", "data": {}}),
    ]

    with (
        pixelgate.Client(base_url=url, api_key="k") as client,
        pytest.raises(ModelUnavailable),
    ):
        client.images.generate(model="local/tiny", prompt="x")
    assert len(script.requests) == 1


def test_an_answer_without_the_envelope_maps_by_status(flaky: tuple[str, Script]) -> None:
    url, script = flaky
    script.answers = [(404, {}, {"detail": "nothing here"})]

    with (
        pixelgate.Client(base_url=url, api_key="k") as client,
        pytest.raises(pixelgate.NotFound),
    ):
        client.jobs.get("job_1")


def test_a_dropped_event_stream_resumes_from_the_last_event_id(
    flaky: tuple[str, Script],
) -> None:
    url, script = flaky
    canceled = {**JOB, "status": "canceled", "cancel_requested": True}
    first = b'id: 1\nevent: queued\ndata: {}\n\nevent: progress\ndata: {"step": 1, "total": 4}\n\n'
    rest = f"id: 3\nevent: canceled\ndata: {json.dumps({'job': canceled})}\n\n".encode()
    stream = {"Content-Type": "text/event-stream"}
    script.answers = [
        # the connection drops in the middle of the body
        (200, {**stream, "Content-Length": str(len(first) + 100)}, first),
        (200, stream, rest),
    ]

    with pixelgate.Client(base_url=url, api_key="k") as client:
        events = list(client.jobs.events("job_1"))

    assert [(event.type, event.step) for event in events] == [
        ("queued", None),
        ("progress", 1),
        ("canceled", None),
    ]
    assert script.last_event_ids == [None, "1"]
    final = events[-1].job
    assert final is not None and final.status == "canceled"


def test_no_server_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        pixelgate.Client(base_url=url, api_key="k", max_retries=1) as client,
        pytest.raises(APIConnectionError) as caught,
    ):
        client.models.list()
    assert caught.value.__cause__ is not None
    assert caught.value.status == 503


def test_backoff_grows_and_stays_bounded() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=0.5, max_delay=2.0)

    delays = [policy.backoff(attempt) for attempt in range(5)]

    assert 0.25 <= delays[0] <= 0.5
    assert 0.5 <= delays[1] <= 1.0
    assert all(1.0 <= delay <= 2.0 for delay in delays[2:])


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
