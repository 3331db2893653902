"""Errors to HTTP, in one place: every failure leaves as the same envelope.

The envelope depends on the surface, and `render_error` alone decides it from the request's
path: the native `{"status": "error", "error": {"code", "message", "param"}}`, or, on the
OpenAI-compatible paths (`/v1/images/...` and everything under `/oai/`), OpenAI's
`{"error": {"message", "type", "param", "code"}}`. Both come from the same exception types.

pixelgate codes on the OpenAI surface (status, `type`, `code`):

    VALIDATION_ERROR      400  invalid_request_error  null
    MUST_PROVIDE_FILE     400  invalid_request_error  missing_required_parameter
    UNAUTHORIZED          401  invalid_request_error  invalid_api_key      (as OpenAI answers)
    FORBIDDEN             403  invalid_request_error  insufficient_permissions
    MODEL_ACCESS_DENIED   403  invalid_request_error  model_not_found      (OpenAI's wording:
                                                        "does not exist or you have no access")
    NOT_FOUND             404  invalid_request_error  not_found
    BUDGET_EXCEEDED       429  insufficient_quota     insufficient_quota   (OpenAI's status for an
                                                        exhausted quota, so clients treat it alike)
    RATE_LIMITED          429  requests               rate_limit_exceeded  (+ Retry-After)
    TIMEOUT               504  server_error           timeout
    any other             its status; invalid_request_error below 500, server_error from 500;
                          the pixelgate code in lower case (backend_error, model_unavailable, ...)

Every OpenAI-shaped error also carries `x-should-retry`, which the `openai` SDK obeys: `true`
only with a `Retry-After` (rate limits), `false` otherwise. The SDK would otherwise retry 409
and 5xx answers, and each retry would submit, and bill, a new job — while pixelgate has already
retried the upstream provider itself.
"""

from __future__ import annotations

import logging
import sys

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from pixelgate.errors import (
    Error,
    InternalError,
    RateLimited,
    ServiceUnavailable,
    ValidationError,
)
from pixelgate.validation import validation_error

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "VALIDATION_ERROR",  # FastAPI's own: a body it could not parse (admin routes)
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


OPENAI_PATHS = ("/v1/images/", "/oai/")
"""Path prefixes of the OpenAI-compatible surface, whose errors take OpenAI's shape."""

_OPENAI_ERRORS: dict[str, tuple[int | None, str, str | None]] = {
    # pixelgate code: (status, or None to keep pixelgate's; OpenAI `type`; OpenAI `code`)
    "VALIDATION_ERROR": (400, "invalid_request_error", None),
    "MUST_PROVIDE_FILE": (400, "invalid_request_error", "missing_required_parameter"),
    "UNAUTHORIZED": (None, "invalid_request_error", "invalid_api_key"),
    "FORBIDDEN": (None, "invalid_request_error", "insufficient_permissions"),
    "MODEL_ACCESS_DENIED": (None, "invalid_request_error", "model_not_found"),
    "NOT_FOUND": (None, "invalid_request_error", "not_found"),
    "BUDGET_EXCEEDED": (429, "insufficient_quota", "insufficient_quota"),
    "RATE_LIMITED": (None, "requests", "rate_limit_exceeded"),
    "TIMEOUT": (None, "server_error", "timeout"),
}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PATHS)


def render_error(
    path: str,
    *,
    code: str,
    message: str,
    param: str | None,
    status: int,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one place an error becomes a body, in the shape of the surface `path` belongs to."""
    headers = dict(headers or {})
    if not is_openai_path(path):
        body = {"status": "error", "error": {"code": code, "message": message, "param": param}}
        return JSONResponse(body, status_code=status, headers=headers)
    fixed_status, kind, openai_code = _OPENAI_ERRORS.get(code, (None, "", code.lower()))
    status = fixed_status or status
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    headers["x-should-retry"] = "true" if "Retry-After" in headers else "false"
    body = {"error": {"message": message, "type": kind, "param": param, "code": openai_code}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(error: Error, *, status: int | None = None, path: str = "") -> JSONResponse:
    """`error` as the surface of `path` shows errors (native when no path is given)."""
    headers = {}
    if isinstance(error, RateLimited) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return render_error(
        path,
        code=error.code,
        message=error.message,
        param=error.param,
        status=status or error.status,
        headers=headers,
    )


def _path(request: Request) -> str:
    return request.url.path


def _from_request_validation(exc: RequestValidationError) -> ValidationError:
    """FastAPI's checks of query and path parameters, through the one converter."""
    return validation_error(exc.errors())


def install_error_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Error)
        return error_response(exc, path=_path(request))

    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_from_request_validation(exc), path=_path(request))

    async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return render_error(
            _path(request),
            code=_HTTP_CODES.get(exc.status_code, "HTTP_ERROR"),
            message=exc.detail,
            param=None,
            status=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def on_unreachable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("a dependency is unreachable: %s", type(exc).__name__)
        what = "database" if isinstance(exc, OperationalError | InterfaceError) else "Redis"
        error = ServiceUnavailable(f"The {what} is unavailable; try again shortly")
        response = error_response(error, path=_path(request))
        response.headers["Retry-After"] = "5"
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if _redis_unreachable(exc):
            return await on_unreachable(request, exc)
        log.exception("unhandled error", exc_info=exc)
        return error_response(InternalError("Internal server error"), path=_path(request))

    app.add_exception_handler(Error, on_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(OperationalError, on_unreachable)
    app.add_exception_handler(InterfaceError, on_unreachable)
    app.add_exception_handler(Exception, on_unexpected)


def _redis_unreachable(exc: Exception) -> bool:
    """A Redis connection error; Redis is only imported (and can only fail) in a cluster."""
    redis = sys.modules.get("redis")
    return redis is not None and isinstance(exc, redis.ConnectionError)
