"""HTTP for the clients: auth, retries, the response envelope, and errors translated at the
boundary, so callers only ever see `pixelgate.errors` exceptions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import httpx

from pixelgate.errors import (
    APIConnectionError,
    Error,
    InternalError,
    RateLimited,
    Timeout,
    error_from_code,
)
from pixelgate.sdk.config import ClientConfig
from pixelgate.sdk.retries import RetryPolicy, parse_retry_after
from pixelgate.sdk.sse import ServerSentEvent, SSEDecoder
from pixelgate.sdk.types import Image, Page

T = TypeVar("T")

USER_AGENT = "pixelgate-python/0.1.0"

_CODES_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    402: "BUDGET_EXCEEDED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BACKEND_ERROR",
    503: "CONNECTION_ERROR",
    504: "TIMEOUT",
}
"""For error answers without pixelgate's envelope (a proxy's, say)."""


def error_from_response(response: httpx.Response) -> Error:
    """The `pixelgate.errors` exception for a non-2xx answer."""
    code = _CODES_BY_STATUS.get(response.status_code, "INTERNAL_ERROR")
    message = f"HTTP {response.status_code} from {response.request.method} {response.url.path}"
    param = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        details = body["error"]
        code = str(details.get("code") or code)
        message = str(details.get("message") or message)
        param = details.get("param")
    error = error_from_code(code, message, param=param)
    if isinstance(error, RateLimited):
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error


def error_from_transport(exc: httpx.TransportError, url: str) -> Error:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(
        exc, httpx.ConnectTimeout | httpx.PoolTimeout
    ):
        return Timeout(f"No answer from {url} in time ({type(exc).__name__})")
    return APIConnectionError(f"Could not talk to {url}: {str(exc) or type(exc).__name__}")


def envelope(response: httpx.Response) -> dict[str, Any]:
    """A `{"status": "ok", "data": ...}` answer."""
    try:
        body = response.json()
    except ValueError as exc:
        raise InternalError(f"The server answered {response.url.path} with invalid JSON") from exc
    if not isinstance(body, dict) or body.get("status") != "ok" or "data" not in body:
        raise InternalError(f"The server answered {response.url.path} without a data envelope")
    return body


def envelope_data(response: httpx.Response) -> Any:
    """The `data` of a `{"status": "ok", "data": ...}` answer."""
    return envelope(response)["data"]


def data_object(response: httpx.Response) -> dict[str, Any]:
    data = envelope_data(response)
    if not isinstance(data, dict):
        raise InternalError(f"Expected an object from {response.url.path}")
    return data


def data_list(response: httpx.Response) -> list[dict[str, Any]]:
    data = envelope_data(response)
    if not isinstance(data, list):
        raise InternalError(f"Expected a list from {response.url.path}")
    return data


def data_page(response: httpx.Response, make: Callable[[dict[str, Any]], T]) -> Page[T]:
    """A page of a list: `data`, each item made by `make`, and the list's paging fields."""
    body = envelope(response)
    items = body["data"]
    if not isinstance(items, list):
        raise InternalError(f"Expected a list from {response.url.path}")
    return Page(
        [make(item) for item in items],
        has_more=bool(body.get("has_more")),
        first_id=body.get("first_id"),
        last_id=body.get("last_id"),
    )


def image_location(image: Image) -> tuple[str, bool]:
    """Where to fetch an image: its link while valid (no key needed), else the stored file
    with the API key."""
    link_valid = image.expires_at is None or image.expires_at > datetime.now(UTC)
    if image.url and link_valid:
        return image.url, False
    return f"/v1/files/{image.file_id}/content", True


@dataclass(frozen=True)
class Form:
    """A multipart body: text fields, and files by field name as (filename, bytes, type)."""

    fields: Mapping[str, str]
    files: Mapping[str, tuple[str, bytes, str]]


class _Transport:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.retry = RetryPolicy(max_retries=config.max_retries)

    def _build(
        self,
        http: httpx.Client | httpx.AsyncClient,
        method: str,
        url: str,
        json: Any,
        form: Form | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
    ) -> httpx.Request:
        return http.build_request(
            method,
            url,
            json=json,
            data=form.fields if form else None,
            files=form.files if form else None,
            params=params,
            headers=self._headers(headers, authenticated),
        )

    def _headers(self, extra: Mapping[str, str] | None, authenticated: bool) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if authenticated and self.config.api_key:
            # per request, so the key never goes to a media link on another host
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        headers.update(extra or {})
        return headers

    def _delay(
        self, method: str, attempt: int, outcome: httpx.Response | httpx.TransportError
    ) -> float | None:
        if isinstance(outcome, httpx.Response):
            return self.retry.after_response(method, outcome, attempt)
        return self.retry.after_transport_error(method, attempt)


class SyncTransport(_Transport):
    """Blocking HTTP over one `httpx.Client`."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config)
        self._http = httpx.Client(base_url=config.base_url, timeout=config.timeout)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        form: Form | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send with retries; a non-2xx answer raises its `pixelgate.errors` exception. The body
        is `json`, or a multipart `form`."""
        request = self._build(self._http, method, url, json, form, params, headers, authenticated)
        return self._send(request, stream=False)

    @contextmanager
    def stream_events(
        self, url: str, *, last_event_id: str | None = None, read_timeout: float | None = None
    ) -> Iterator[Iterator[ServerSentEvent | None]]:
        """An event stream; it yields None for each comment (the server's keep-alives)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self.config.timeout, read=read_timeout or self.config.timeout)
        request = self._http.build_request(
            "GET", url, headers=self._headers(headers, True), timeout=timeout
        )
        response = self._send(request, stream=True)
        try:
            yield self._events(response)
        finally:
            response.close()

    def _events(self, response: httpx.Response) -> Iterator[ServerSentEvent | None]:
        decoder = SSEDecoder()
        try:
            for line in response.iter_lines():
                if line.startswith(":"):
                    yield None
                    continue
                event = decoder.decode(line)
                if event is not None:
                    yield event
        except httpx.TransportError as exc:
            raise error_from_transport(exc, str(response.url)) from exc

    def download(self, image: Image) -> bytes:
        url, authenticated = image_location(image)
        return self.request("GET", url, authenticated=authenticated).content

    async def adownload(self, image: Image) -> bytes:
        return await anyio.to_thread.run_sync(self.download, image)

    def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = self._delay(request.method, attempt, exc)
                if delay is None:
                    raise error_from_transport(exc, str(request.url)) from exc
            else:
                if response.is_success:
                    return response
                try:
                    response.read()
                finally:
                    response.close()
                delay = self._delay(request.method, attempt, response)
                if delay is None:
                    raise error_from_response(response)
            time.sleep(delay)
            attempt += 1


class AsyncTransport(_Transport):
    """The same over one `httpx.AsyncClient`."""

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(config)
        self._http = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        form: Form | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send with retries; a non-2xx answer raises its `pixelgate.errors` exception. The body
        is `json`, or a multipart `form`."""
        request = self._build(self._http, method, url, json, form, params, headers, authenticated)
        return await self._send(request, stream=False)

    @asynccontextmanager
    async def stream_events(
        self, url: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[AsyncIterator[ServerSentEvent | None]]:
        """An event stream; it yields None for each comment (the server's keep-alives)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        request = self._http.build_request("GET", url, headers=self._headers(headers, True))
        response = await self._send(request, stream=True)
        try:
            yield self._events(response)
        finally:
            await response.aclose()

    async def _events(self, response: httpx.Response) -> AsyncIterator[ServerSentEvent | None]:
        decoder = SSEDecoder()
        try:
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    yield None
                    continue
                event = decoder.decode(line)
                if event is not None:
                    yield event
        except httpx.TransportError as exc:
            raise error_from_transport(exc, str(response.url)) from exc

    def download(self, image: Image) -> bytes:
        # a blocking call from code that holds an async client: a short-lived blocking client
        transport = SyncTransport(self.config)
        try:
            return transport.download(image)
        finally:
            transport.close()

    async def adownload(self, image: Image) -> bytes:
        url, authenticated = image_location(image)
        return (await self.request("GET", url, authenticated=authenticated)).content

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = self._delay(request.method, attempt, exc)
                if delay is None:
                    raise error_from_transport(exc, str(request.url)) from exc
            else:
                if response.is_success:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                delay = self._delay(request.method, attempt, response)
                if delay is None:
                    raise error_from_response(response)
            await anyio.sleep(delay)
            attempt += 1
