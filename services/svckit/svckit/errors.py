"""The contract's error shape, `{"error": {"code", "message"}}`, for every REST failure.

FastAPI's own `{"detail": ...}` answers (validation, unknown route, wrong method)
are rewritten into that shape too, so a client parses one format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

STATUS_CODES = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
    503: "not_ready",
}


# The contract's `{"error": {"code", "message"}}`, or OpenAI's
# `{"error": {"message", "type", "param", "code"}}` (llm-local, for the OpenAI SDKs).
ErrorShape = Literal["contract", "openai"]


class ApiError(Exception):
    """An answer in the error shape; raise it from any handler. `type_` and `param` are
    OpenAI's fields, for the services that answer in its shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.type = type_
        self.param = param


def error_body(
    code: str,
    message: str,
    *,
    shape: ErrorShape = "contract",
    type_: str = "invalid_request_error",
    param: str | None = None,
) -> dict[str, Any]:
    if shape == "openai":
        return {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    shape: ErrorShape = "contract",
    type_: str = "invalid_request_error",
    param: str | None = None,
) -> Response:
    body = error_body(code, message, shape=shape, type_=type_, param=param)
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def describe_validation_error(exc: RequestValidationError) -> tuple[int, str, str]:
    """Status, code and message for a request FastAPI could not validate.

    The message names fields and rules only: the rejected input may be a caller's words.
    """
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, "malformed", "request body is not valid JSON"
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    if any(err.get("loc", ())[:1] == ("body",) and len(err.get("loc", ())) == 1 for err in errors):
        return 400, "malformed", "; ".join(parts)
    return 422, "invalid_field", "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        status, code, message = describe_validation_error(exc)
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "internal error")


class BodySizeLimit:
    """Reject request bodies over `max_bytes` with 413 before the app sees them.

    The body is buffered (it is small by contract) and replayed to the app;
    later `receive` calls go to the server so disconnects are still seen.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, "too_large", f"request body is over {self.max_bytes} bytes")
        await response(scope, receive, send)
