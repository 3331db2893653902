"""The upstream HTTP policy every hosted provider shares.

One `UpstreamClient` per provider: httpx with timeouts, at most `max_retries + 1` attempts, and
retries with exponential backoff and full jitter on 429, 5xx and connection failures (a POST only
when it never left: one that may have reached the provider may have been accepted and billed,
and is never sent again; a timeout is a `ProviderTimeout`, which no job retries either). A
`Retry-After` header (seconds or an HTTP date) replaces the backoff, capped so that a provider
cannot park a worker for long. The client returns the last response, good or bad, as an
`UpstreamResponse`; the provider reads it, because only the provider knows its error shape.

`fetch_result` downloads a result URL a provider handed back, without the provider's key, so
the caller can store the bytes (a provider's URL is never handed on). Every URL called on a
provider's word (results, polling URLs, each redirect hop, followed here one by one) passes the
client's `EgressGuard` first and is connected to the address it checked (SSRF; see `egress`).
`read_image` turns result bytes into a `GeneratedImage`. Keys never reach a log line: headers
are logged redacted.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import logging
import random
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from pydantic import SecretStr

from pixelgate.catalog import ModelSpec
from pixelgate.errors import (
    BackendError,
    Canceled,
    Error,
    ModelUnavailable,
    ProviderTimeout,
    Timeout,
    ValidationError,
)
from pixelgate.providers.base import (
    CancelToken,
    GeneratedImage,
    ImageInput,
    ImageTask,
    ProgressCallback,
    UpstreamTask,
)
from pixelgate.providers.egress import EgressGuard
from pixelgate.providers.transport import CONNECT_TO, StdlibTransport
from pixelgate.settings import Settings

log = logging.getLogger(__name__)

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-key", "x-api-key", "api-key", "cookie"}
)
MAX_RESPONSE_BYTES = 128 * 1024 * 1024
"""Larger answers are refused: ten high-quality base64 images fit well within this."""
CANCEL_CHECK_SECONDS = 0.05
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
MAX_REDIRECTS = 5
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

FileField = tuple[str | None, bytes, str | None]
"""A multipart file part: (file name, bytes, content type)."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a failed upstream call is tried again."""

    max_retries: int = 2
    backoff_seconds: float = 0.5
    """The first retry waits up to this long; each later one up to twice the one before."""
    max_delay_seconds: float = 30.0
    """Cap on any single wait, `Retry-After` included."""

    def delay(self, retry: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (0 for the first)."""
        asked = retry_after_seconds(retry_after, now=datetime.now(UTC))
        if asked is not None:
            return min(asked, self.max_delay_seconds)
        # full jitter: spreads the retries of many workers over the whole window
        ceiling = min(self.max_delay_seconds, self.backoff_seconds * 2**retry)
        return rng.uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A `Retry-After` header in seconds: delay-seconds or an HTTP date; None when absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


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


def wait(seconds: float, cancel: CancelToken | None) -> None:
    """Sleep, waking early to raise `Canceled` when the job is canceled."""
    deadline = time.monotonic() + seconds
    while True:
        if cancel is not None and cancel.canceled:
            raise Canceled("Job canceled")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, CANCEL_CHECK_SECONDS))


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
    ) -> None:
        self.provider = provider
        self.timeout_seconds = timeout_seconds
        self.retry = retry
        self.guard = guard or EgressGuard.create(provider)
        """Checks URLs given on the provider's word; by default trusts none."""
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
            follow_redirects=False,
            # one client serves every tenant: a cookie an upstream sets must never be sent back
            cookies=http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            ),
            # httpx's own transport where a proxy is configured: it honours the environment's
            transport=None if urllib.request.getproxies() else StdlibTransport(),
        )

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

    def close(self) -> None:
        self._client.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        cancel: CancelToken,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        multipart: Mapping[str, str | FileField] | None = None,
        on_providers_word: bool = False,
    ) -> UpstreamResponse:
        """One upstream call, retried on 429, 5xx and connection failures. Returns the last
        response whatever its status; raises `Timeout` when the provider does not answer in
        time, `BackendError` when it cannot be reached, `Canceled` when the job is canceled
        before an attempt or during a wait.

        `multipart` is sent as multipart/form-data even when it holds no file: plain fields
        become parts without a file name (Stability refuses url-encoded forms).

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
            # checked again on each attempt: the address is pinned for this connection only
            address = self.guard.check(url).address if on_providers_word else None
            request = self._client.build_request(
                method,
                url,
                headers=sent_headers,
                json=json_body,
                files=parts,
                extensions={CONNECT_TO: address} if address else None,
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
                if not _retryable(response.status) or retries >= self.retry.max_retries:
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
    that shows the request never left (a retryable one: no connection) takes the note back."""
    noted = task.upstream.earlier_of(index)
    if noted is not None and not task.upstream.noted_by_this_attempt(noted):
        raise BackendError(
            f"An earlier attempt of this job sent its request to the {provider} provider, which "
            "may have accepted (and billed) it; it is not sent again"
        )
    if noted is None:
        task.upstream.note(UpstreamTask(provider, by_attempt=task.upstream.attempt), index=index)
    try:
        return send()
    except Error as exc:
        if exc.retryable and not isinstance(exc, ProviderTimeout):
            task.upstream.note(None, index=index)
        raise


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def read_image(
    data: bytes, *, provider: str, seed: int | None = None, revised_prompt: str | None = None
) -> GeneratedImage:
    """A result image from its bytes: its format and size are read from the bytes themselves,
    so a body that is not an image is refused here rather than stored."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or "").lower()
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise BackendError(f"The {provider} provider returned data that is not an image") from exc
    content_type = Image.MIME.get(fmt.upper(), f"image/{fmt}")
    return GeneratedImage(
        data=data,
        content_type=content_type,
        width=width,
        height=height,
        seed=seed,
        revised_prompt=revised_prompt,
    )


def image_part(name: str, image: ImageInput) -> FileField:
    """A multipart file part for an input image, with a file name that matches its type."""
    extension = IMAGE_EXTENSIONS.get(image.content_type, "png")
    return (f"{name}.{extension}", image.data, image.content_type)


def malformed(provider: str, what: str) -> BackendError:
    return BackendError(f"The {provider} provider sent a malformed response: {what}")


@dataclass(frozen=True)
class ProviderKey:
    """A hosted provider's API key, from settings only, and the variable that sets it."""

    provider: str
    value: SecretStr | None
    variable: str  # PIXELGATE_OPENAI_API_KEY, ...

    def missing(self) -> str | None:
        """Why the provider's models cannot run here, or None when the key is set."""
        if self.value is None:
            return f"provider {self.provider!r} has no API key (set {self.variable})"
        return None

    def require(self, spec: ModelSpec) -> str:
        """The key, for a request about to be sent; refuses the model when none is set."""
        if self.value is None:
            raise ModelUnavailable(
                f"Model {spec.id!r} is unavailable: {self.missing()}", param="model"
            )
        return self.value.get_secret_value()


def key_refused(provider: str, status: int) -> BackendError:
    """401/403 from a provider: our configured key was refused; the caller's key is fine."""
    return BackendError(
        f"The {provider} provider refused pixelgate's API key for it (HTTP {status}); "
        "the operator should check the configured key"
    )


CAPABILITY_OF_KIND: dict[str, tuple[str, ...]] = {
    "generate": ("generate",),
    "edit": ("edit", "inpaint"),
    "variation": ("variations",),
    "remove-background": ("remove-background",),
}


def require_capability(spec: ModelSpec, task: ImageTask) -> None:
    """Refuse a task kind the catalog does not list for the model, before any upstream call."""
    if not set(CAPABILITY_OF_KIND[task.kind]) & set(spec.capabilities):
        raise ValidationError(f"Model {spec.id!r} does not support {task.kind}", param="model")


def fan_out(
    n: int,
    make_one: Callable[[int], GeneratedImage],
    *,
    provider: str,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> list[GeneratedImage]:
    """`n` images from an upstream that makes one per call: `make_one(index)` called `n` times,
    so `n` means the same on every model. A call that fails does not stop the others; the job
    keeps the images made (each billed) and the failed ones are refunded, as for any job that
    made fewer than asked. Only when every call failed is the first failure raised (at once
    when the upstream refused the request itself); a cancel stops at once. Each call is its own
    billed request: `make_one` sends it with `send_once(..., index=index)`, so a later attempt
    of the job resumes or skips the images an earlier one sent, and sends only the others."""
    images: list[GeneratedImage] = []
    failures: list[Error] = []
    progress(0, n)
    for index in range(n):
        if cancel.canceled:
            raise Canceled("Job canceled")
        try:
            images.append(make_one(index))
        except Canceled:
            raise
        except Error as exc:
            if n == 1 or (isinstance(exc, ValidationError) and not images):
                raise  # the request itself was refused: the next calls would be too
            log.warning("%s: image %d of %d failed: %s", provider, index + 1, n, exc.message)
            failures.append(exc)
        progress(index + 1, n)
    if not images:
        raise failures[0]
    return images


def seed_for(seed: int | None, index: int) -> int | None:
    """The seed of the `index`-th image of a request: consecutive, as local models draw them,
    so each image can be made again alone."""
    return None if seed is None else (seed + index) % 2**32
