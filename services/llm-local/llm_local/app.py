"""The llm-local app: OpenAI-compatible routes over one backend.

The backend starts in the background (a model may take a while to load, an
upstream to come up), so `/health` answers 503 with `Retry-After` until it is
ready. The caller's deadline arrives as `X-Request-Timeout-Ms` (milliseconds it
has left, relative so clocks need not agree); without it LLM_REQUEST_TIMEOUT_S
applies. Routes under `/v1`, `/config` and `/health/deep` require the API key
when LLM_API_KEY is set; `/health` and `/metrics` stay open for probes.

`POST /v1/prefill` is llm-local's extension for prefilling while the caller speaks.
Its body is a chat completion request's (`messages`, optionally `model` and
`response_format`; sampling and other fields are ignored). It renders the prompt
exactly as a chat completion would (the chat template's generation prompt included)
and has the engine decode it into the prefix cache in the background, without
generating. A later request whose prompt starts with the same tokens (same system
prompt, same earlier messages, a last message that starts the same) then decodes only
what differs: the cache matches on token prefixes, so the caller's final words may
differ from the partial ones. The answer comes at once, before the decoding:

    200 {"prompt_tokens": n, "cached_tokens": k, "prefilled_tokens": m, "queued": true}

`cached_tokens`: leading prompt tokens already decoded; `prefilled_tokens`: tokens now
queued for decoding (0 when `queued` is false). Background decoding yields to live
generation: while requests are decoded it adds LLM_PREFILL_BACKGROUND_CHUNK tokens (1)
to a step, and a request that needs tokens it has not reached takes them over. Its
queue is bounded: a prefill of the same conversation replaces the queued or running
one, and under load (requests waiting for a sequence, or LLM_MAX_PREFILLS queued) a
prefill is refused with `"queued": false`. A schema in `response_format` is compiled,
so the request's grammar is ready too. Backends without a prefix cache of their own
(the proxies) answer 200 `{"supported": false}`.
"""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from llm_local.api_models import (
    DEFAULT_COMPLETION_MAX_TOKENS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingItem,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    PrefillRequest,
    response_schema,
)
from llm_local.auth import SettingsDep, require_api_key
from llm_local.backends.base import (
    Backend,
    BackendError,
    Finished,
    GenerationRequest,
    Message,
    NotReady,
    SamplingParams,
)
from llm_local.backends.proxy import redact_url
from llm_local.backends.registry import build_backend
from llm_local.errors import OpenAIBodySizeLimit, install_error_handlers
from llm_local.metrics import LlmMetrics, RequestCounter
from llm_local.settings import LlmSettings
from llm_local.streaming import (
    ChatRenderer,
    CompletionRenderer,
    GenerationResponse,
    Renderer,
    close_stream,
)
from svckit.errors import ApiError
from svckit.metrics import metrics_response

log = structlog.get_logger(__name__)

DEADLINE_HEADER = "X-Request-Timeout-Ms"
NOT_READY_RETRY_AFTER_S = 5.0
DEEP_HEALTH_TIMEOUT_S = 30.0
# Browsers send these cross-origin without a CORS preflight; refusing them keeps any web
# page from making a key-less llm-local generate.
SIMPLE_CONTENT_TYPES = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)

BodyT = TypeVar("BodyT", bound=BaseModel)


@dataclass
class Service:
    """What the routes of one app share."""

    settings: LlmSettings
    backend: Backend
    metrics: LlmMetrics
    started_at: int
    start_error: str | None = None

    def ensure_ready(self) -> None:
        if self.start_error is not None:
            raise ApiError(
                503,
                "start_failed",
                f"the {self.backend.name} backend failed to start: {self.start_error}",
                type_="server_error",
            )
        if not self.backend.ready:
            raise NotReady(
                f"the {self.backend.name} backend is starting", retry_after=NOT_READY_RETRY_AFTER_S
            )


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def json_body(model: type[BodyT]) -> Callable[[Request], Awaitable[BodyT]]:
    """A dependency parsing the body as JSON whatever its Content-Type says, as
    OpenAI-compatible servers do: clients send `application/octet-stream` too."""

    async def parse(request: Request) -> BodyT:
        content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type in SIMPLE_CONTENT_TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send the request body as JSON (Content-Type: application/json)",
            )
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
            raise RequestValidationError(errors) from None

    return parse


async def request_deadline(request: Request, settings: SettingsDep) -> float:
    """The caller's deadline as a `time.monotonic()` instant."""
    raw = request.headers.get(DEADLINE_HEADER)
    if raw is None:
        return time.monotonic() + settings.llm_request_timeout_s
    try:
        remaining_ms = float(raw)
    except ValueError:
        remaining_ms = math.nan
    if not math.isfinite(remaining_ms) or remaining_ms <= 0:
        raise ApiError(
            400,
            "invalid_header",
            f"{DEADLINE_HEADER} must be a positive number of milliseconds",
            param=DEADLINE_HEADER,
        )
    return time.monotonic() + remaining_ms / 1000


DeadlineDep = Annotated[float, Depends(request_deadline)]


def _json(payload: BaseModel | dict[str, Any]) -> Response:
    body = payload.model_dump_json() if isinstance(payload, BaseModel) else orjson.dumps(payload)
    return Response(body, media_type="application/json")


def _max_tokens(requested: int | None, default: int, limit: int) -> int:
    if requested is None:
        return default
    if requested > limit:
        raise ApiError(
            422, "invalid_field", f"max_tokens must be at most {limit}", param="max_tokens"
        )
    return requested


def _generate(
    service: Service,
    body: ChatCompletionRequest | CompletionRequest,
    deadline: float,
    endpoint: str,
    renderer_type: type[Renderer],
) -> GenerationResponse:
    backend = service.backend
    limit = service.settings.llm_max_tokens_limit
    default = limit if endpoint == "chat" else min(DEFAULT_COMPLETION_MAX_TOKENS, limit)
    max_tokens = _max_tokens(body.requested_max_tokens(), default, limit)
    prefix = "chatcmpl" if endpoint == "chat" else "cmpl"
    request_id = f"{prefix}-{uuid.uuid4().hex}"
    generation = body.to_generation(request_id, max_tokens, deadline, backend.model)
    service.ensure_ready()
    if generation.json_schema is not None:
        backend.check_schema(generation.json_schema)
    return GenerationResponse(
        backend.stream(generation),
        renderer_type(request_id, backend.model, include_usage=body.include_usage),
        service.metrics.watch(endpoint, request_id),
        stream=body.stream,
        deadline=deadline,
    )


def _model_card(service: Service) -> ModelCard:
    return ModelCard(id=service.backend.model, created=service.started_at)


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


@v1.get("/models")
async def list_models(service: ServiceDep) -> Response:
    return _json(ModelList(data=[_model_card(service)]))


@v1.get("/models/{model_id:path}")
async def get_model(model_id: str, service: ServiceDep) -> Response:
    if model_id != service.backend.model:
        raise ApiError(404, "model_not_found", f"the model {model_id!r} is not served here")
    return _json(_model_card(service))


@v1.post("/chat/completions")
async def chat_completions(
    body: Annotated[ChatCompletionRequest, Depends(json_body(ChatCompletionRequest))],
    service: ServiceDep,
    deadline: DeadlineDep,
) -> Response:
    return _generate(service, body, deadline, "chat", ChatRenderer)


@v1.post("/completions")
async def completions(
    body: Annotated[CompletionRequest, Depends(json_body(CompletionRequest))],
    service: ServiceDep,
    deadline: DeadlineDep,
) -> Response:
    return _generate(service, body, deadline, "completions", CompletionRenderer)


@v1.post("/prefill")
async def prefill(
    body: Annotated[PrefillRequest, Depends(json_body(PrefillRequest))], service: ServiceDep
) -> Response:
    service.ensure_ready()
    backend = service.backend
    messages = body.to_messages()
    schema = response_schema(body.response_format)
    if schema is not None:
        backend.check_schema(schema)
    result = await backend.prefill(messages)
    if result is None:
        return _json({"supported": False})
    return _json(
        {
            "prompt_tokens": result.prompt_tokens,
            "cached_tokens": result.cached_tokens,
            "prefilled_tokens": result.prefilled_tokens,
            "queued": result.queued,
        }
    )


@v1.post("/embeddings")
async def embeddings(
    body: Annotated[EmbeddingRequest, Depends(json_body(EmbeddingRequest))], service: ServiceDep
) -> Response:
    inputs = body.inputs()
    service.ensure_ready()
    result = await service.backend.embed(inputs)
    data = [
        EmbeddingItem(index=index, embedding=_encode(vector, body.encoding_format))
        for index, vector in enumerate(result.vectors)
    ]
    usage = EmbeddingUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens)
    return _json(EmbeddingList(data=data, model=service.backend.model, usage=usage))


ops = APIRouter()


@ops.get("/health")
async def health(service: ServiceDep) -> Response:
    service.ensure_ready()
    return _json({"status": "ok", "backend": service.backend.name, "model": service.backend.model})


@ops.get("/health/deep", dependencies=[Depends(require_api_key)])
async def deep_health(service: ServiceDep) -> Response:
    """A real one-token generation through the backend, with its latency."""
    service.ensure_ready()
    backend = service.backend
    request = GenerationRequest(
        request_id=f"health-{uuid.uuid4().hex}",
        params=SamplingParams(max_tokens=1, temperature=0.0),
        messages=(Message(role="user", content="Say OK."),),
        deadline=time.monotonic() + DEEP_HEALTH_TIMEOUT_S,
        model=backend.model,
    )
    started = time.monotonic()
    events = backend.stream(request)
    finished = None
    try:
        async for event in events:
            if isinstance(event, Finished):
                finished = event
                break
    except BackendError as exc:
        raise ApiError(
            503,
            "health_check_failed",
            f"a one-token generation failed: {exc.message}",
            type_="server_error",
            headers={"Retry-After": str(math.ceil(NOT_READY_RETRY_AFTER_S))},
        ) from None
    finally:
        await close_stream(events)
    if finished is None:
        raise ApiError(
            503,
            "health_check_failed",
            "the backend ended its stream without finishing",
            type_="server_error",
        )
    return _json(
        {
            "status": "ok",
            "backend": backend.name,
            "model": backend.model,
            "latency_ms": round((time.monotonic() - started) * 1000, 1),
            "prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens,
        }
    )


@ops.get("/config", dependencies=[Depends(require_api_key)])
async def config(service: ServiceDep) -> Response:
    """What runs and with which limits; never a secret."""
    settings = service.settings
    upstream = None if settings.llm_backend == "embedded" else redact_url(settings.upstream_url)
    return _json(
        {
            "backend": service.backend.name,
            "model": service.backend.model,
            "ready": service.backend.ready,
            "upstream_url": upstream,
            "auth_enabled": bool(settings.llm_api_key),
            "deadline_header": DEADLINE_HEADER,
            "limits": {
                "max_tokens": settings.llm_max_tokens_limit,
                "request_timeout_s": settings.llm_request_timeout_s,
                "max_body_bytes": settings.llm_max_body_bytes,
                "json_whitespace_limit": settings.llm_json_whitespace_limit,
            },
            "engine": service.backend.describe(),
        }
    )


@ops.get("/metrics")
async def metrics(service: ServiceDep) -> Response:
    return metrics_response(service.metrics.registry)


async def _start_backend(service: Service) -> None:
    backend = service.backend
    try:
        await backend.start()
    except Exception as exc:
        service.start_error = f"{type(exc).__name__}: {exc}"
        log.error("backend_start_failed", backend=backend.name, error=service.start_error)
        return
    log.info("backend_ready", backend=backend.name, model=backend.model)


def create_app(settings: LlmSettings | None = None, backend: Backend | None = None) -> FastAPI:
    settings = settings or LlmSettings()
    backend = backend or build_backend(settings)
    service = Service(settings, backend, LlmMetrics(backend), started_at=int(time.time()))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        starting = asyncio.create_task(_start_backend(service))
        try:
            yield
        finally:
            starting.cancel()
            await asyncio.wait((starting,))
            await backend.close()

    app = FastAPI(title="llm-local", lifespan=lifespan)
    app.state.settings = settings
    app.state.service = service
    install_error_handlers(app)
    app.include_router(v1)
    app.include_router(ops)
    app.add_middleware(OpenAIBodySizeLimit, max_bytes=settings.llm_max_body_bytes)
    app.add_middleware(RequestCounter, counter=service.metrics.requests)
    return app
