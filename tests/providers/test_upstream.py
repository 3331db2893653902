"""The client every hosted provider calls its upstream with: retries as the policy says,
redaction, cancel during a wait, unreachable hosts, result fetching, one billed send per job."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from pixelgate.catalog import Catalog
from pixelgate.errors import BackendError, Canceled, Timeout
from pixelgate.providers import CancelToken, ImageTask
from pixelgate.providers.base import UpstreamState, UpstreamTask
from pixelgate.providers.egress import EgressGuard
from pixelgate.providers.retries import RetryPolicy
from pixelgate.providers.upstream import (
    UpstreamClient,
    UpstreamResponse,
    loggable_url,
    redact_headers,
    send_once,
)
from tests.conftest import free_port
from tests.providers.upstreams.server import FakeUpstream, Reply


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def client(**policy: float) -> UpstreamClient:
    retry = RetryPolicy(
        max_retries=int(policy.pop("max_retries", 2)),
        backoff_seconds=policy.pop("backoff_seconds", 0.001),
        max_delay_seconds=policy.pop("max_delay_seconds", 0.2),
    )
    # the fakes are on loopback: allowed by name, as an operator would allow an internal host
    guard = EgressGuard.create("example", allowed_hosts=["127.0.0.1"])
    timeout = policy.pop("timeout_seconds", 2.0)
    return UpstreamClient("example", timeout_seconds=timeout, retry=retry, guard=guard)


def test_credentials_are_redacted() -> None:
    headers = {"Authorization": "Bearer sk-1", "x-key": "k", "accept": "image/*"}

    assert redact_headers(headers) == {
        "Authorization": "***",
        "x-key": "***",
        "accept": "image/*",
    }


def test_the_last_retryable_answer_is_returned_after_all_attempts(
    upstream: FakeUpstream,
) -> None:
    upstream.script("/busy", Reply(503), Reply(502), Reply(429))

    response = client(max_retries=2).send("POST", f"{upstream.url}/busy", cancel=CancelToken())

    assert response.status == 429
    assert len(upstream.requests_to("/busy")) == 3


def test_a_cookie_an_upstream_sets_is_never_sent_back(upstream: FakeUpstream) -> None:
    # the client is shared by every tenant's calls to the provider
    upstream.script("/first", Reply(200, headers={"Set-Cookie": "session=tenant-a; Path=/"}))
    upstream.script("/second", Reply(200))
    shared = client()

    shared.send("POST", f"{upstream.url}/first", cancel=CancelToken())
    shared.send("POST", f"{upstream.url}/second", cancel=CancelToken())

    assert upstream.requests_to("/second")[0].headers.get("Cookie") is None


def test_a_4xx_answer_is_not_retried(upstream: FakeUpstream) -> None:
    upstream.script("/bad", Reply(400))

    response = client().send("POST", f"{upstream.url}/bad", cancel=CancelToken())

    assert response.status == 400
    assert len(upstream.requests_to("/bad")) == 1


def test_cancel_during_a_retry_wait_stops_at_once(upstream: FakeUpstream) -> None:
    upstream.script("/busy", Reply(503, headers={"retry-after": "5"}))
    cancel = CancelToken()
    threading.Timer(0.1, cancel.cancel).start()

    started = time.monotonic()
    with pytest.raises(Canceled):
        client(max_delay_seconds=5.0).send("GET", f"{upstream.url}/busy", cancel=cancel)

    assert time.monotonic() - started < 1.0
    assert len(upstream.requests_to("/busy")) == 1


def test_an_unreachable_host_is_a_backend_error_after_the_retries() -> None:
    port = free_port()  # nothing listens on it now: every attempt is refused

    with pytest.raises(BackendError, match="Could not reach the example provider: ConnectError"):
        client().send("GET", f"http://127.0.0.1:{port}/", cancel=CancelToken())


def test_results_are_fetched_over_http_only(upstream: FakeUpstream) -> None:
    url = upstream.host_file("/r.bin", b"\x89PNG...", "image/png")

    assert client().fetch_result(url, cancel=CancelToken()) == b"\x89PNG..."
    with pytest.raises(BackendError, match="not http"):
        client().fetch_result("file:///etc/passwd", cancel=CancelToken())


def test_a_missing_result_is_a_backend_error(upstream: FakeUpstream) -> None:
    with pytest.raises(BackendError, match="HTTP 404"):
        client().fetch_result(f"{upstream.url}/expired.png", cancel=CancelToken())


def test_logged_urls_lose_their_query_where_signatures_live() -> None:
    url = "https://blob.example/images/img-1.png?se=2025-06-01&sig=c2VjcmV0"

    assert loggable_url(url) == "https://blob.example/images/img-1.png"


# -- a billed request, sent once per job --------------------------------------------------


def _task_with(earlier: dict[int, UpstreamTask], attempt: int, kept: list[object]) -> ImageTask:
    options = Catalog.load().validate_options(
        Catalog.load().resolve("openai/dall-e-2"), {"prompt": "a lighthouse"}
    )
    upstream = UpstreamState(earlier, kept.append, attempt=attempt)
    return ImageTask("generate", options, upstream=upstream)


def test_the_claims_own_note_lets_its_attempt_send_without_a_write_of_its_own() -> None:
    kept: list[object] = []
    sent: list[int] = []
    task = _task_with({0: UpstreamTask("openai", by_attempt=1)}, 1, kept)

    def send() -> UpstreamResponse:
        sent.append(1)
        return UpstreamResponse(200, httpx.Headers(), b"{}")

    response = send_once("openai", task, send)

    assert response.ok and sent == [1]
    assert kept == []  # noted when the job was claimed: no second write before the call


def test_a_request_noted_by_an_earlier_attempt_is_never_sent_again() -> None:
    kept: list[object] = []
    sent: list[int] = []
    task = _task_with({0: UpstreamTask("openai", by_attempt=1)}, 2, kept)

    def send() -> UpstreamResponse:
        sent.append(1)
        return UpstreamResponse(200, httpx.Headers(), b"")

    with pytest.raises(BackendError, match="not sent again"):
        send_once("openai", task, send)
    assert sent == []


def test_without_a_claims_note_the_request_is_noted_before_it_goes() -> None:
    kept: list[object] = []
    task = _task_with({}, 1, kept)
    send_once("openai", task, lambda: UpstreamResponse(200, httpx.Headers(), b"{}"))
    assert kept == [{0: UpstreamTask("openai", by_attempt=1)}]


# -- what a refused request billed --------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "billed_nothing"),
    [
        (Reply(429), True),  # rate-limited upstream, after the retries
        (Reply(503), True),  # a 5xx answer to the submit: no task was made
        (Reply(200, b"{}"), False),
        (Reply(400), False),  # an answer the provider read: it may have billed it
        (Reply(200, delay=3.0), False),  # sent, then no answer in time: it may be working on it
        (Reply(drop=True), False),  # the connection broke after the request went
    ],
)
def test_a_request_refused_before_any_work_is_marked_as_billing_nothing(
    upstream: FakeUpstream, reply: Reply, billed_nothing: bool
) -> None:
    upstream.script("/submit", reply, reply, reply)
    kept: list[object] = []
    task = _task_with({}, 1, kept)
    http = client(max_retries=2, timeout_seconds=1.0)

    url = f"{upstream.url}/submit"

    with contextlib.suppress(BackendError, Timeout):  # the provider reads the answer
        send_once("openai", task, lambda: http.send("POST", url, cancel=CancelToken()))

    assert task.upstream.billed_nothing is billed_nothing
    assert kept[-1] == {0: task.upstream.earlier}  # kept with the job: never sent again
    assert task.upstream.earlier is not None
    assert task.upstream.earlier.refused is billed_nothing


def test_a_request_that_could_not_connect_billed_nothing() -> None:
    task = _task_with({}, 1, [])
    url = f"http://127.0.0.1:{free_port()}/submit"  # nothing listens: every attempt is refused

    with pytest.raises(BackendError, match="Could not reach"):
        send_once("openai", task, lambda: client().send("POST", url, cancel=CancelToken()))

    assert task.upstream.billed_nothing
