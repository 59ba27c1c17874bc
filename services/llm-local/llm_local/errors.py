"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every failure.

Backend errors, validation errors, unknown routes, wrong methods, oversized bodies
and unexpected exceptions all answer in this one shape, so an OpenAI SDK raises a
typed error for each of them instead of failing to parse the body.
"""

from __future__ import annotations

import math

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from llm_local.backends.base import BackendError
from svckit.errors import (
    STATUS_CODES,
    ApiError,
    BodySizeLimit,
    describe_validation_error,
    error_response,
)

log = structlog.get_logger(__name__)

# Seconds a client should wait before retrying when the backend gave no hint.
DEFAULT_RETRY_AFTER_S = {429: 1.0, 503: 5.0}


def retry_after_headers(status: int, retry_after: float | None) -> dict[str, str] | None:
    """`Retry-After` in whole seconds for 429 and 503 (the header takes no fractions)."""
    seconds = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_S.get(status)
    if seconds is None:
        return None
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def backend_error_response(exc: BackendError) -> Response:
    return error_response(
        exc.status,
        exc.code,
        exc.message,
        retry_after_headers(exc.status, exc.retry_after),
        shape="openai",
        type_=exc.type,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(
            exc.status,
            exc.code,
            exc.message,
            exc.headers,
            shape="openai",
            type_=exc.type,
            param=exc.param,
        )

    @app.exception_handler(BackendError)
    async def _backend_error(_request: Request, exc: BackendError) -> Response:
        return backend_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        status, code, message = describe_validation_error(exc)
        errors = exc.errors()
        loc = errors[0].get("loc", ()) if errors else ()
        param = ".".join(str(part) for part in loc if part != "body") or None
        return error_response(status, code, message, shape="openai", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        type_ = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, headers, shape="openai", type_=type_)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(
            500, "internal_error", "internal error", shape="openai", type_="server_error"
        )


class OpenAIBodySizeLimit(BodySizeLimit):
    """svckit's body limit, answering 413 in OpenAI's shape."""

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "too_large", f"request body is over {self.max_bytes} bytes", shape="openai"
        )
        await response(scope, receive, send)
