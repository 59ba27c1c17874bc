"""dm's HTTP API: the REST turn API of CONTRACT.md, plus what the gateway uses.

Internal additions (for the gateway; not part of the public contract):
- `POST /v1/calls/{call_id}/turns` with `Accept: text/event-stream` streams the
  turn as SSE events `backchannel`, `reply.delta`, then `turn.done`, or
  `turn.cancelled` / `error`; each event's data is the WebSocket message.
- `POST /v1/calls/{call_id}/turns/{turn_id}/interrupt` body `{"heard": str}`:
  the caller barged in. A turn still in flight is cancelled (not applied) →
  `{"status": "cancelled"}`; a finished one gets what the caller heard noted
  → `{"status": "recorded"}`.
- `POST /v1/calls/{call_id}/partial` body `{"text": str}` → 202: the caller is
  still speaking; the LLM decodes the turn's prompt with these words meanwhile.
- `X-Call-Owner`: a label of the API key the gateway authenticated (never the key).
  A call belongs to the label it was created with; any other label finds no call.
- With `DM_API_KEY` set, every route but /healthz, /readyz and /metrics needs
  `Authorization: Bearer <DM_API_KEY>`.

Domain errors (`dm.errors`) become HTTP answers here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import aiohttp
import orjson
import structlog
from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import Response, StreamingResponse
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from dm import errors
from dm.flows import Flow, load_flows
from dm.flows.loader import BUILTIN_DIR
from dm.llm import LlmClient
from dm.metrics import DmMetrics
from dm.settings import DmSettings
from dm.speakable import split_sentences
from dm.store import CallStore
from dm.turns import ReplayedTurn, RunningTurn, TurnEvent, TurnService, error_code
from svckit.errors import ApiError, BodySizeLimit, error_response, install_error_handlers
from svckit.metrics import metrics_response
from svckit.wire import (
    EVENT_REPLY_DELTA,
    EVENT_TURN_DONE,
    ID_MAX_CHARS,
    ID_PATTERN,
    MAX_BODY_BYTES,
    CallCreate,
    InterruptRequest,
    PartialRequest,
    TurnRequest,
    TurnResult,
)

log = structlog.get_logger("dm.api")

CallId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_CHARS)]
TurnId = Annotated[str, Path(pattern=ID_PATTERN, max_length=ID_MAX_CHARS)]
OWNER_HEADER = "x-call-owner"
# HTTP status of each domain error.
STATUS_OF: dict[type[errors.CallError], int] = {
    errors.UnknownFlow: 422,
    errors.UnsupportedLanguage: 422,
    errors.UnsupportedRegion: 422,
    errors.CallExists: 409,
    errors.CallNotFound: 404,
    errors.CallEnded: 410,
    errors.TurnIdReused: 422,
    errors.TurnInProgress: 409,
    errors.TurnNotFound: 404,
    errors.TurnCancelled: 409,
    errors.StateConflict: 409,
    errors.TurnFailed: 503,
    errors.InterruptTimeout: 503,
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
READY_TIMEOUT_S = 1.0
WARM_UP_WINDOW_S = 120.0  # how long to wait for the LLM service to come up and warm


async def get_service(request: Request) -> TurnService:
    service: TurnService = request.app.state.service
    return service


async def get_owner(request: Request) -> str:
    return request.headers.get(OWNER_HEADER, "")


Service = Annotated[TurnService, Depends(get_service)]
Owner = Annotated[str, Depends(get_owner)]


def http_error(error: errors.CallError) -> ApiError:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return ApiError(STATUS_OF[type(error)], error_code(error), str(error), headers)


def create_app(settings: DmSettings | None = None, flows: dict[str, Flow] | None = None) -> FastAPI:
    settings = settings or DmSettings()
    # A bad flow file stops start-up here, naming the file and the node.
    flows = flows if flows is not None else load_flows(settings.dm_flows_dir or BUILTIN_DIR)
    metrics = DmMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.dm_redis_max_connections,
            timeout=settings.dm_redis_timeout_s,
            # Explicit: redis-py's default depends on its version (none in 5.x).
            socket_timeout=settings.dm_redis_timeout_s,
            socket_connect_timeout=settings.dm_redis_timeout_s,
        )
        redis = Redis(connection_pool=pool)
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, connect=2.0, sock_read=settings.dm_turn_deadline_s + 1
            ),
            connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=30),
        )
        llm = LlmClient(
            http,
            settings.llm_base_url,
            api_key=settings.llm_api_key,
            model=settings.llm_model,
            temperature=settings.dm_llm_temperature,
        )
        store = CallStore(
            redis,
            settings.dm_state_ttl_s,
            turn_records=settings.dm_turn_records,
            interrupt_records=settings.dm_interrupt_records,
        )
        service = TurnService(settings, store, flows, llm, metrics)
        app.state.service = service
        app.state.redis = redis
        app.state.http = http
        warmed = asyncio.Event()
        app.state.warmed = warmed
        background = [asyncio.create_task(_listen_forever(service))]
        if settings.dm_llm_warm_up:
            warm_up = _warm_up_when_ready(service, http, settings, warmed)
            background.append(asyncio.create_task(warm_up))
        else:
            warmed.set()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await http.close()
            await redis.aclose()
            await pool.disconnect()

    app = FastAPI(title="dm", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    @app.exception_handler(errors.CallError)
    async def _call_error(_request: Request, exc: errors.CallError) -> Response:
        error = http_error(exc)
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RedisError)
    async def _redis_down(_request: Request, exc: RedisError) -> Response:
        log.error("redis_error", error=type(exc).__name__)
        return error_response(
            503, "state_unavailable", "call state store unreachable", {"Retry-After": "1"}
        )

    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    if settings.dm_api_key:
        app.add_middleware(RequireKey, key=settings.dm_api_key)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        checks = {
            "redis": await _check_redis(request.app.state.redis),
            "llm": await _check_llm(request.app.state.http, settings.llm_base_url, settings),
            # Not ready while the LLM decodes the flows' system prompts: a turn taken
            # now would queue behind that prefill and miss its deadline.
            "prompt_cache": "ok" if request.app.state.warmed.is_set() else "warming",
        }
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return Response(
            orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
        )

    @app.get("/metrics")
    async def get_metrics(request: Request) -> Response:
        await _read_redis_memory(request.app.state.redis, metrics)
        return metrics_response(metrics.registry)

    @app.get("/v1/flows")
    async def list_flows() -> dict[str, Any]:
        return {"flows": [flow.summary() for flow in flows.values()]}

    @app.get("/v1/flows/{flow_id}")
    async def get_flow(flow_id: str) -> dict[str, Any]:
        flow = flows.get(flow_id)
        if flow is None:
            raise ApiError(404, "flow_not_found", f"no flow '{flow_id}'")
        return flow.graph()

    @app.post("/v1/calls", status_code=201)
    async def create_call(body: CallCreate, service: Service, owner: Owner) -> Response:
        created = await service.create_call(body, owner)
        structlog.contextvars.bind_contextvars(call_id=created.call_id)
        return Response(created.model_dump_json(), status_code=201, media_type="application/json")

    @app.get("/v1/calls/{call_id}")
    async def get_call(call_id: CallId, service: Service, owner: Owner) -> dict[str, Any]:
        return await service.get_call(call_id, owner)

    @app.delete("/v1/calls/{call_id}")
    async def end_call(call_id: CallId, service: Service, owner: Owner) -> dict[str, Any]:
        structlog.contextvars.bind_contextvars(call_id=call_id)
        return await service.end_call(call_id, owner, "ended_by_client")

    @app.post("/v1/calls/{call_id}/turns", response_model=None)
    async def take_turn(
        call_id: CallId, body: TurnRequest, request: Request, service: Service, owner: Owner
    ) -> Response:
        received_at = time.perf_counter()
        structlog.contextvars.bind_contextvars(call_id=call_id, turn_id=body.turn_id)
        started = await service.start_turn(call_id, owner, body, received_at)
        if "text/event-stream" in request.headers.get("accept", ""):
            return TurnEventStream(
                _sse(started), media_type="text/event-stream", headers=SSE_HEADERS
            )
        if isinstance(started, ReplayedTurn):
            return _json(started.result)
        # Shielded: a client that hangs up does not stop the turn, which is stored for a retry.
        assert started.task is not None
        return _json(_outcome(started, await asyncio.shield(started.task)))

    @app.post("/v1/calls/{call_id}/turns/{turn_id}/interrupt")
    async def interrupt(
        call_id: CallId, turn_id: TurnId, body: InterruptRequest, service: Service, owner: Owner
    ) -> dict[str, str]:
        structlog.contextvars.bind_contextvars(call_id=call_id, turn_id=turn_id)
        return {"status": await service.interrupt(call_id, owner, turn_id, body.heard)}

    @app.post("/v1/calls/{call_id}/partial", status_code=202)
    async def partial(
        call_id: CallId, body: PartialRequest, service: Service, owner: Owner
    ) -> dict[str, str]:
        await service.prefill(call_id, owner, body.text)
        return {"status": "accepted"}

    return app


class TurnEventStream(StreamingResponse):
    """A turn's SSE events written straight out. Under an ASGI server older than spec
    2.4 (uvicorn's httptools) Starlette's StreamingResponse also runs a task group that
    listens for the client's disconnect: ~0.6 ms of CPU per turn here (saturated SSE
    turns, wrk: 292-310/s with it, 328-392/s without). A turn needs none of it: it
    runs to its end whether the client stays or not (the gateway cancels it
    explicitly), and uvicorn drops writes to a closed connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


def _outcome(turn: RunningTurn, result: TurnResult | None) -> TurnResult:
    if result is not None:
        return result
    if turn.error is not None:
        raise turn.error
    raise errors.TurnCancelled(f"turn '{turn.turn_id}' was interrupted")


class RequireKey:
    """Every route but the probes needs `Authorization: Bearer <DM_API_KEY>`."""

    OPEN = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = error_response(401, "unauthorized", "missing or invalid dm key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _json(result: TurnResult) -> Response:
    return Response(result.model_dump_json(), media_type="application/json")


async def _sse(started: RunningTurn | ReplayedTurn) -> AsyncIterator[bytes]:
    if isinstance(started, ReplayedTurn):
        result = started.result
        for piece in split_sentences(result.reply):
            yield _sse_event(EVENT_REPLY_DELTA, {"turn_id": result.turn_id, "text": piece})
        yield _sse_event(EVENT_TURN_DONE, result.model_dump())
        return
    while True:
        event: TurnEvent | None = await started.events.get()
        if event is None:
            return
        yield _sse_event(event.name, event.data)


def _sse_event(name: str, data: dict[str, Any]) -> bytes:
    payload = orjson.dumps({"type": name, **data})
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


async def _check_redis(redis: Redis) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def _read_redis_memory(redis: Redis, metrics: DmMetrics) -> None:
    """Redis's memory figures into the gauges; left as they were when Redis does not answer."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            memory = await redis.info("memory")
    except (RedisError, OSError, TimeoutError):
        return
    metrics.redis_used_memory.set(memory.get("used_memory", 0))
    metrics.redis_maxmemory.set(memory.get("maxmemory", 0))


async def _check_llm(http: aiohttp.ClientSession, base_url: str, settings: DmSettings) -> str:
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    try:
        async with http.get(
            base_url.rstrip("/") + "/models",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT_S),
        ) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok" if status == 200 else f"status {status}"


async def _warm_up_when_ready(
    service: TurnService, http: aiohttp.ClientSession, settings: DmSettings, done: asyncio.Event
) -> None:
    """Warm the LLM's prompt cache once it answers (it may still be loading its model);
    after WARM_UP_WINDOW_S without success (an LLM down, or one that never answers),
    give up and let readiness go on."""
    try:
        async with asyncio.timeout(WARM_UP_WINDOW_S):
            while True:
                ready = await _check_llm(http, settings.llm_base_url, settings) == "ok"
                if ready and await service.warm_up():
                    return
                await asyncio.sleep(1.0)
    except TimeoutError:
        log.warning("warm_up_gave_up", after_s=WARM_UP_WINDOW_S)
    finally:
        done.set()


async def _listen_forever(service: TurnService) -> None:
    """Keep the barge-in subscription alive across Redis restarts."""
    while True:
        try:
            await service.listen_for_interrupts()
        except (RedisError, OSError) as exc:
            log.warning("interrupt_listener_down", error=type(exc).__name__)
        await asyncio.sleep(1.0)
