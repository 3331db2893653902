"""Errors to HTTP, in one place: every failure leaves as the same envelope."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pixelgate.errors import Error, InternalError, RateLimited, ValidationError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def error_response(error: Error, *, status: int | None = None) -> JSONResponse:
    headers = {}
    if isinstance(error, RateLimited) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse(
        {"status": "error", "error": error.to_dict()},
        status_code=status or error.status,
        headers=headers,
    )


def _from_request_validation(exc: RequestValidationError) -> ValidationError:
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return ValidationError("The request body is not valid JSON", param=None)
    if first.get("type") == "missing":
        return ValidationError(f"Missing required field {param!r}", param=param)
    return ValidationError(f"Invalid {param}: {first.get('msg')}", param=param)


def install_error_handlers(app: FastAPI) -> None:
    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Error)
        return error_response(exc)

    async def on_request_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_from_request_validation(exc), status=422)

    async def on_http_exception(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        body = {"status": "error", "error": {"code": code, "message": exc.detail, "param": None}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(InternalError("Internal server error"))

    app.add_exception_handler(Error, on_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
