"""The REST turn API at the edge: auth and rate limits, then dm answers as it is.

Bodies go to dm untouched and dm's answers come back untouched (status, the
contract's error shape, `Retry-After`); dm validates. A streamed turn
(`Accept: text/event-stream`) is relayed byte for byte. Every call route names the
caller's owner label to dm, which answers 404 for a call of another key.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from gateway.auth import Caller
from gateway.deps import Deps, GatewayDeps
from gateway.dm_client import SSE, DmError
from gateway.openapi import answers, json_body
from svckit.errors import ApiError, error_response
from svckit.wire import ID_MAX_CHARS, ID_PATTERN

CallId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_CHARS)]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def authenticate(request: Request, deps: GatewayDeps) -> Caller:
    caller = deps.auth.identify(request.headers.get("authorization"))
    if caller is None:
        deps.metrics.errors.labels("unauthorized").inc()
        raise ApiError(
            401, "unauthorized", "missing or invalid API key", {"WWW-Authenticate": "Bearer"}
        )
    return caller


async def admit(request: Request, deps: Deps) -> Caller:
    """Auth, then the key's token bucket and its bucket for the call."""
    caller = authenticate(request, deps)
    wait = deps.limits.admit(caller.label, request.path_params.get("call_id"))
    if wait:
        deps.metrics.errors.labels("rate_limited").inc()
        raise ApiError(
            429, "rate_limited", "too many requests", {"Retry-After": str(math.ceil(wait))}
        )
    return caller


Admitted = Annotated[Caller, Depends(admit)]
router = APIRouter()


@router.get("/v1/flows", responses=answers(200, "FlowList", 401, 429, 503))
async def list_flows(_caller: Admitted, deps: Deps) -> Response:
    return await forward(deps, "GET", "/v1/flows")


@router.get("/v1/flows/{flow_id}", responses=answers(200, "FlowGraph", 401, 404, 429, 503))
async def get_flow(flow_id: str, _caller: Admitted, deps: Deps) -> Response:
    return await forward(deps, "GET", "/v1/flows/" + quote(flow_id, safe=""))


@router.post(
    "/v1/calls",
    status_code=201,
    responses=answers(201, "CallCreated", 400, 401, 409, 413, 422, 429, 503),
    openapi_extra=json_body("CallCreate"),
)
async def create_call(request: Request, caller: Admitted, deps: Deps) -> Response:
    return await forward(deps, "POST", "/v1/calls", await request.body(), caller.owner)


@router.get("/v1/calls/{call_id}", responses=answers(200, "CallState", 401, 404, 422, 429, 503))
async def get_call(call_id: CallId, caller: Admitted, deps: Deps) -> Response:
    return await forward(deps, "GET", f"/v1/calls/{call_id}", None, caller.owner)


@router.delete(
    "/v1/calls/{call_id}", responses=answers(200, "CallSummary", 401, 404, 422, 429, 503)
)
async def end_call(call_id: CallId, caller: Admitted, deps: Deps) -> Response:
    return await forward(deps, "DELETE", f"/v1/calls/{call_id}", None, caller.owner)


@router.post(
    "/v1/calls/{call_id}/turns",
    responses=answers(
        200, "TurnResult", 400, 401, 404, 408, 409, 410, 413, 422, 429, 503, stream=True
    ),
    openapi_extra=json_body("TurnRequest"),
)
async def take_turn(call_id: CallId, request: Request, caller: Admitted, deps: Deps) -> Response:
    body = await request.body()
    if SSE in request.headers.get("accept", ""):
        return await stream_turn(deps, call_id, body, caller.owner)
    return await forward(deps, "POST", f"/v1/calls/{call_id}/turns", body, caller.owner)


async def forward(
    deps: GatewayDeps,
    method: str,
    path: str,
    content: bytes | None = None,
    owner: str | None = None,
) -> Response:
    try:
        answer = await deps.dm.forward(method, path, content, owner)
    except DmError as exc:
        return dm_error_response(deps, exc)
    if answer.status >= 400:
        deps.metrics.errors.labels(error_code(answer.content)).inc()
    headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
    return Response(
        answer.content, status_code=answer.status, media_type=answer.content_type, headers=headers
    )


async def stream_turn(deps: GatewayDeps, call_id: str, body: bytes, owner: str | None) -> Response:
    """Relay a streamed turn; dm's refusal before the stream is an ordinary error answer."""
    dm_stream = AsyncExitStack()
    try:
        chunks = await dm_stream.enter_async_context(deps.dm.stream(call_id, body, owner))
    except DmError as exc:
        return dm_error_response(deps, exc)
    timeout_s = deps.settings.gateway_dm_timeout_s
    return StreamingResponse(
        _relay(chunks, timeout_s),
        media_type=SSE,
        headers=SSE_HEADERS,
        # Runs when the response ends, the client's hang-up included.
        background=BackgroundTask(dm_stream.aclose),
    )


async def _relay(chunks: AsyncIterator[bytes], timeout_s: float) -> AsyncIterator[bytes]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while True:
            # One deadline for the stream, entered per read: a timeout scope must not
            # span a `yield`, where the response's own awaits would be cancelled.
            async with asyncio.timeout_at(deadline):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk
    except (DmError, TimeoutError):
        payload = {"type": "error", "code": "dm_unavailable", "message": "the turn's stream broke"}
        yield b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


def dm_error_response(deps: GatewayDeps, exc: DmError) -> Response:
    deps.metrics.errors.labels(exc.code).inc()
    headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
    return error_response(exc.status, exc.code, exc.message, headers)


def error_code(content: bytes) -> str:
    try:
        return str(orjson.loads(content)["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "dm_error"
