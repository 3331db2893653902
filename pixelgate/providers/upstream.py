"""The HTTP client every hosted provider calls its upstream with.

One `UpstreamClient` per provider, all of them over one shared `httpx.Client` (`shared_http`:
httpx's own transport and connection pool, keep-alive, and the environment's proxy settings):
timeouts, at most `max_retries + 1` attempts, and retries with exponential backoff and full
jitter on 429, 5xx and connection failures (a POST only when it never left: one that may have
reached the provider may have been accepted and billed, and is never sent again; a timeout is a
`ProviderTimeout`, which no job retries either). A
`Retry-After` header (seconds or an HTTP date) replaces the backoff, capped so that a provider
cannot park a worker for long. The client returns the last response, good or bad, as an
`UpstreamResponse`; the provider reads it, because only the provider knows its error shape.

`fetch_result` downloads a result URL a provider handed back, without the provider's key, so
the caller can store the bytes (a provider's URL is never handed on). Every URL called on a
provider's word (results, polling URLs, each redirect hop, followed here one by one) passes the
client's `EgressGuard` first and is connected to the address it checked (SSRF; see `egress`):
the request names that address in its URL, the host name in `Host`, and over TLS the host name
is the name sent (SNI) and the one the certificate is checked against (httpcore's
`sni_hostname` extension; see `pinned`). Where a proxy is configured, the proxy connects by
name and nothing is pinned. `read_image` turns result bytes into a `GeneratedImage`. Keys never
reach a log line: headers are logged redacted.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import random
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import httpx

from pixelgate.errors import BackendError, Canceled, Error, ProviderTimeout, Timeout
from pixelgate.providers.base import CancelToken, ImageTask, UpstreamTask
from pixelgate.providers.egress import EgressGuard
from pixelgate.providers.results import FileField, malformed
from pixelgate.providers.retries import RetryPolicy, retryable_status, wait
from pixelgate.settings import Settings

log = logging.getLogger(__name__)

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-key",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
    }
)
MAX_RESPONSE_BYTES = 128 * 1024 * 1024
"""Larger answers are refused: ten high-quality base64 images fit well within this."""
MAX_REDIRECTS = 5
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)
"""No cap on connections (a job thread never waits for a free one); up to 64 kept alive, more
than the API process runs jobs at once."""


@cache
def shared_http() -> httpx.Client:
    """The one httpx client every provider's calls go through, made on first use."""
    return httpx.Client(
        follow_redirects=False,
        # one client serves every tenant: a cookie an upstream sets must never be sent back
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
        limits=POOL_LIMITS,
    )


def pinned(url: httpx.URL, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The URL, headers and extensions that send a request for `url` to `address` (an address
    the egress guard checked), whatever the host name resolves to by then: the address in the
    URL, the host name in `Host` and, over TLS, as the name sent and verified (SNI).

    The connection is closed after the answer: the pool knows a connection by its URL's host,
    here the address, and a request for another name at that address must never go over a TLS
    session checked for this one."""
    return (
        url.copy_with(host=address),
        {"Host": url.netloc.decode("ascii"), "Connection": "close"},
        {"sni_hostname": url.host} if url.scheme == "https" else {},
    )


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers fit for a log line: credentials replaced by `***`."""
    return {
        name: "***" if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.items()
    }


def loggable_url(url: str) -> str:
    """A URL fit for a log line: without its query, where signed result URLs keep their
    signature."""
    try:
        return str(httpx.URL(url).copy_with(query=None, fragment=None))
    except httpx.InvalidURL:
        return "<invalid URL>"


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        value: str = self.headers.get("content-type", "")
        return value.split(";")[0].strip().lower()

    def json_body(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None


class UpstreamClient:
    """Calls one provider's HTTP API under the shared timeout and retry policy."""

    def __init__(
        self,
        provider: str,
        *,
        timeout_seconds: float,
        retry: RetryPolicy,
        guard: EgressGuard | None = None,
        rng: random.Random | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """`http`: the httpx client to send with (tests give one that trusts their own
        certificate authority); by default the shared one."""
        self.provider = provider
        self.timeout_seconds = timeout_seconds
        self.retry = retry
        self.guard = guard or EgressGuard.create(provider)
        """Checks URLs given on the provider's word; by default trusts none."""
        self._rng = rng or random.Random()
        self._client = http or shared_http()
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0))
        self._pins = not urllib.request.getproxies()
        """Whether a checked address is connected to; not through a proxy, which connects by
        name."""

    @classmethod
    def from_settings(
        cls, provider: str, settings: Settings, *, base_url: str | None = None
    ) -> UpstreamClient:
        """The client for a provider; `base_url`, its configured root, is trusted."""
        return cls(
            provider,
            guard=EgressGuard.create(
                provider, base_url=base_url, allowed_hosts=settings.provider_allowed_hosts
            ),
            timeout_seconds=settings.provider_timeout_seconds,
            retry=RetryPolicy(
                max_retries=settings.provider_max_retries,
                backoff_seconds=settings.provider_retry_backoff_seconds,
                max_delay_seconds=settings.provider_retry_max_delay_seconds,
            ),
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        cancel: CancelToken,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        multipart: Mapping[str, str | FileField] | None = None,
        form: Mapping[str, str] | None = None,
        on_providers_word: bool = False,
    ) -> UpstreamResponse:
        """One upstream call, retried on 429, 5xx and connection failures. Returns the last
        response whatever its status; raises `Timeout` when the provider does not answer in
        time, `BackendError` when it cannot be reached, `Canceled` when the job is canceled
        before an attempt or during a wait.

        `multipart` is sent as multipart/form-data even when it holds no file: plain fields
        become parts without a file name (Stability refuses url-encoded forms); `form` is sent
        url-encoded (OAuth token endpoints take nothing else).

        `on_providers_word`: the URL came from the provider's answer, not from its configured
        base URL; it passes the egress guard, and the connection goes to the checked address.
        Redirects are never followed here."""
        sent_headers = dict(headers or {})
        parts: list[tuple[str, tuple[str | None, bytes, str | None]]] | None = None
        if multipart is not None:
            parts = [
                (name, (None, value.encode(), None) if isinstance(value, str) else value)
                for name, value in multipart.items()
            ]
        retries = 0
        while True:
            if cancel.canceled:
                raise Canceled("Job canceled")
            if log.isEnabledFor(logging.DEBUG):  # its arguments cost more than the call
                log.debug(
                    "upstream %s %s %s headers=%s",
                    self.provider,
                    method,
                    loggable_url(url),
                    redact_headers(sent_headers),
                )
            # checked again on each attempt: the address is pinned for this request only
            target = httpx.URL(url)
            pins: dict[str, str] = {}
            extensions: dict[str, Any] = {}
            if on_providers_word:
                address = self.guard.check(target).address
                if address is not None and self._pins:
                    target, pins, extensions = pinned(target, address)
            request = self._client.build_request(
                method,
                target,
                headers={**sent_headers, **pins},
                json=json_body,
                data=form,
                files=parts,
                timeout=self._timeout,
                extensions=extensions,
            )
            try:
                response = self._attempt(request)
            except (httpx.ConnectTimeout, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                # no answer came back. A request that never left (no connection) is tried
                # again, and so is a GET; a POST that may have reached the provider is not: it
                # may have been accepted, and would be billed twice
                unsent = isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError)
                if not unsent and method not in IDEMPOTENT_METHODS:
                    raise BackendError(
                        f"The connection to the {self.provider} provider broke after the "
                        f"request was sent ({type(exc).__name__}); it may have been accepted, "
                        "so it is not sent again"
                    ) from exc
                if retries >= self.retry.max_retries:
                    raise self._unreachable(exc) from exc
                delay = self.retry.delay(retries, None, self._rng)
                log.warning(
                    "%s: %s %s failed (%s); retry %d in %.2fs",
                    self.provider,
                    method,
                    loggable_url(url),
                    type(exc).__name__,
                    retries + 1,
                    delay,
                )
            except httpx.TimeoutException as exc:
                # no retry, here or by the job: the provider may still be working on (and
                # billing) this request
                raise ProviderTimeout(
                    f"The {self.provider} provider did not answer within "
                    f"{self.timeout_seconds:g} seconds"
                ) from exc
            except httpx.HTTPError as exc:
                raise BackendError(
                    f"Calling the {self.provider} provider failed: {type(exc).__name__}"
                ) from exc
            else:
                if not retryable_status(response.status) or retries >= self.retry.max_retries:
                    return response
                delay = self.retry.delay(retries, response.headers.get("retry-after"), self._rng)
                log.warning(
                    "%s: %s %s answered %d; retry %d in %.2fs",
                    self.provider,
                    method,
                    loggable_url(url),
                    response.status,
                    retries + 1,
                    delay,
                )
            wait(delay, cancel)
            retries += 1

    def fetch_result(self, url: str, *, cancel: CancelToken) -> bytes:
        """The bytes behind a result URL the provider returned. Sent without credentials; each
        redirect hop is checked by the egress guard before it is followed."""
        try:
            scheme = httpx.URL(url).scheme
        except httpx.InvalidURL:
            scheme = ""
        if scheme not in ("http", "https"):
            raise BackendError(
                f"The {self.provider} provider returned a result URL that is not http(s)"
            )
        for _ in range(MAX_REDIRECTS + 1):
            response = self.send("GET", url, cancel=cancel, on_providers_word=True)
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location:
                break
            try:
                url = str(httpx.URL(url).join(location))
            except httpx.InvalidURL:
                raise malformed(self.provider, "a redirect to a URL that cannot be read") from None
        else:
            raise BackendError(
                f"Fetching the result from the {self.provider} provider took more than "
                f"{MAX_REDIRECTS} redirects; refused"
            )
        if not response.ok:
            raise BackendError(
                f"Fetching the result from the {self.provider} provider failed with HTTP "
                f"{response.status}"
            )
        return response.content

    def _attempt(self, request: httpx.Request) -> UpstreamResponse:
        response = self._client.send(request, stream=True, follow_redirects=False)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                raise self._too_large()
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > MAX_RESPONSE_BYTES:
                    raise self._too_large()
        finally:
            response.close()
        return UpstreamResponse(response.status_code, response.headers, bytes(body))

    def _too_large(self) -> BackendError:
        return BackendError(
            f"The {self.provider} provider sent more than {MAX_RESPONSE_BYTES} bytes; refused"
        )

    def _unreachable(self, exc: httpx.HTTPError) -> BackendError | Timeout:
        if isinstance(exc, httpx.TimeoutException):
            return Timeout(f"Could not connect to the {self.provider} provider in time")
        return BackendError(f"Could not reach the {self.provider} provider: {type(exc).__name__}")


def send_once(
    provider: str,
    task: ImageTask,
    send: Callable[[], UpstreamResponse],
    *,
    index: int = 0,
) -> UpstreamResponse:
    """`send()`, a request the provider bills, at most once per job. It is noted with the job
    (`ImageTask.upstream`, as request `index`: the image `fan_out` makes with it, or 0 for a
    request that makes them all) before it goes; if an earlier attempt of the job noted it, it
    is not sent again (the provider may have accepted and billed it) and it fails. A failure
    that shows the request never left (a retryable one: no connection) takes the note back.

    A request the provider refused before accepting any work is marked `refused` in its note
    (`UpstreamState.billed_nothing`): one that could not connect, and one answered 429 or 5xx
    (the provider made no task of it). A timeout after the request went, or any other answer,
    leaves it as it may have been billed."""
    noted = task.upstream.earlier_of(index)
    if noted is not None and not task.upstream.noted_by_this_attempt(noted):
        raise BackendError(
            f"An earlier attempt of this job sent its request to the {provider} provider, which "
            "may have accepted (and billed) it; it is not sent again"
        )
    if noted is None:
        noted = UpstreamTask(provider, by_attempt=task.upstream.attempt)
        task.upstream.note(noted, index=index)
    try:
        response = send()
    except Error as exc:
        if exc.retryable and not isinstance(exc, ProviderTimeout):
            task.upstream.note(None, index=index)
        elif isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout):
            task.upstream.note(replace(noted, refused=True), index=index)
        raise
    if response.status == 429 or response.status >= 500:
        task.upstream.note(replace(noted, refused=True), index=index)
    return response
