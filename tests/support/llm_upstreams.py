"""Stand-ins behind llm-local for tests: a deterministic `Backend`, and scripted engine
servers (OpenAI-style SSE for vLLM / llama.cpp / OpenAI, NDJSON for Ollama) that record
what they were sent, stream, fail, stall, and notice when the proxy hangs up."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llm_local.app import create_app
from llm_local.backends.base import (
    Backend,
    BackendError,
    BackendStats,
    Embeddings,
    Finished,
    GenerationRequest,
    SchemaUnsupported,
    StreamEvent,
    TextDelta,
)
from llm_local.backends.proxy import find_unsupported_keyword
from llm_local.settings import LlmSettings
from support.servers import ServerThread
from voicectl.scripted_llm import minimal_instance

DEFAULT_REPLY = "Hello from the scripted backend, one token at a time."


def local_settings(**overrides: Any) -> LlmSettings:
    """Settings from the arguments, not from `.env`; no keys unless given."""
    values: dict[str, Any] = {"llm_api_key": "", "llm_upstream_api_key": ""}
    values.update(overrides)
    return LlmSettings(_env_file=None, **values)


def wait_ready(base_url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{base_url}/health").status_code == 200:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{base_url} did not become ready")


def metric_value(base_url: str, metric: str, /, **labels: str) -> float:
    """One sample of llm-local's /metrics (0 when the series does not exist yet)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    series = f"{metric}{{{wanted}}}" if labels else metric
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        if not line.startswith("#") and line.rsplit(" ", 1)[0] == series:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@contextmanager
def serve_llm_local(
    settings: LlmSettings, backend: Backend | None = None, *, ready_timeout_s: float = 10.0
) -> Iterator[str]:
    """llm-local under a real uvicorn on loopback; yields its URL once ready."""
    with ServerThread(create_app(settings, backend)) as server:
        wait_ready(server.url, ready_timeout_s)
        yield server.url


# The deterministic backend.


@dataclass
class BackendScript:
    """What the scripted backend does with the next streams."""

    reply: str = DEFAULT_REPLY
    token_chars: int = 4
    token_delay_s: float = 0.0
    error: BackendError | None = None  # raised as each stream starts
    honour_deadline: bool = True


class ScriptedBackend(Backend):
    """Streams its reply (or the smallest object valid for the schema) in fixed-size
    tokens; honours max_tokens, stop strings and the deadline; records what it saw."""

    name = "scripted"

    def __init__(self, *, loaded: bool = True) -> None:
        self.script = BackendScript()
        self.requests: list[GenerationRequest] = []
        self.closed_early: list[int] = []  # tokens sent by each stream closed before its end
        self.stream_closed = threading.Event()
        self.loaded = threading.Event()  # start() finishes once this is set
        if loaded:
            self.loaded.set()
        self.queue_depth = 0
        self._ready = False
        self._active = 0

    async def start(self) -> None:
        while not self.loaded.is_set():  # noqa: ASYNC110 - set from the test's thread
            await asyncio.sleep(0.01)
        self._ready = True

    async def close(self) -> None:
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def model(self) -> str:
        return "scripted-model"

    def check_schema(self, schema: dict[str, Any]) -> None:
        found = find_unsupported_keyword(schema, frozenset({"patternProperties"}))
        if found is not None:
            raise SchemaUnsupported(f"the scripted backend cannot enforce {found[0]!r}")

    def describe(self) -> dict[str, Any]:
        return {"scripted": True}

    def stats(self) -> BackendStats:
        return BackendStats(
            queue_depth=self.queue_depth, active=self._active, extra={"scripted_streams": 1.0}
        )

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        vectors = [[float(len(text)), (sum(map(ord, text)) % 101) / 101, 1.0] for text in inputs]
        return Embeddings(vectors=vectors, prompt_tokens=sum(len(t.split()) for t in inputs))

    def _text_for(self, request: GenerationRequest) -> str:
        if request.json_schema is not None:
            return orjson.dumps(minimal_instance(request.json_schema)).decode()
        return self.script.reply

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        script = self.script
        if script.error is not None:
            raise script.error
        params = request.params
        text = self._text_for(request)
        # The whole reply is known, so a stop string simply ends it where it starts.
        text = text[: min((text.find(s) for s in params.stop if s in text), default=len(text))]
        size = script.token_chars
        tokens = [text[i : i + size] for i in range(0, len(text), size)]
        prompt_tokens = sum(len(m.content.split()) for m in request.messages or ())
        prompt_tokens += len((request.prompt or "").split())
        sent, finished = 0, False
        self._active += 1
        try:
            for token in tokens[: params.max_tokens]:
                if script.token_delay_s:
                    await asyncio.sleep(script.token_delay_s)
                if self._past_deadline(request):
                    finished = True
                    yield Finished("length", prompt_tokens, sent, stop_cause="deadline")
                    return
                sent += 1
                yield TextDelta(token)
            finished = True
            reason = "stop" if len(tokens) <= params.max_tokens else "length"
            yield Finished(reason, prompt_tokens, sent)
        finally:
            self._active -= 1
            if not finished:
                self.closed_early.append(sent)
                self.stream_closed.set()

    def _past_deadline(self, request: GenerationRequest) -> bool:
        deadline = request.deadline
        return self.script.honour_deadline and deadline is not None and time.monotonic() >= deadline


# Scripted engine servers.

Flavor = Literal["openai", "ollama"]


@dataclass(frozen=True)
class EngineReply:
    content: str = '{"next_node": "ask_phone", "slots": {"name": "Anna"}}'
    chunk_chars: int = 6
    chunk_delay_s: float = 0.0
    stall_s: float = 0.0  # before the response starts
    stall_after_chunks: int | None = None  # then hang for 30 s mid-stream
    status: int = 200
    message: str = "scripted engine failure"
    retry_after: str | None = None
    finish_reason: str = "stop"
    mid_stream_error: str | None = None  # an error item instead of the finish


@dataclass
class EngineRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ScriptedEngine:
    """A Starlette app playing an inference engine: `openai` (vLLM, llama.cpp server, any
    OpenAI-compatible server; API under `prefix`) or `ollama` (its native API)."""

    flavor: Flavor
    prefix: str = "/v1"
    default: EngineReply = field(default_factory=EngineReply)
    replies: deque[EngineReply] = field(default_factory=deque)
    requests: list[EngineRequest] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    disconnects: int = 0
    completed: int = 0
    hung_up: threading.Event = field(default_factory=threading.Event)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> Starlette:
        if self.flavor == "ollama":
            routes = [
                Route("/api/chat", self._generate, methods=["POST"]),
                Route("/api/generate", self._generate, methods=["POST"]),
                Route("/api/embed", self._embed, methods=["POST"]),
                Route("/api/version", self._probe, methods=["GET"]),
            ]
        else:
            routes = [
                Route(f"{self.prefix}/chat/completions", self._generate, methods=["POST"]),
                Route(f"{self.prefix}/completions", self._generate, methods=["POST"]),
                Route(f"{self.prefix}/embeddings", self._embed, methods=["POST"]),
                Route(f"{self.prefix}/models", self._probe, methods=["GET"]),
                Route("/health", self._probe, methods=["GET"]),
            ]
        return Starlette(routes=routes)

    def push(self, *replies: EngineReply) -> None:
        self.replies.extend(replies)

    @property
    def last(self) -> EngineRequest:
        return self.requests[-1]

    async def _probe(self, request: Request) -> Response:
        self.probes.append(request.url.path)
        return JSONResponse({"version": "scripted", "object": "list", "data": []})

    def _error(self, reply: EngineReply) -> Response:
        error: Any = reply.message
        if self.flavor == "openai":
            error = {"message": reply.message, "type": "server_error", "code": reply.status}
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else None
        return JSONResponse({"error": error}, status_code=reply.status, headers=headers)

    async def _embed(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(EngineRequest(request.url.path, body, dict(request.headers)))
        vectors = [[float(i), 0.5] for i in range(len(body["input"]))]
        if self.flavor == "ollama":
            return JSONResponse({"embeddings": vectors, "prompt_eval_count": 3})
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return JSONResponse({"data": data[::-1], "usage": {"prompt_tokens": 3}})

    async def _generate(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(EngineRequest(request.url.path, body, dict(request.headers)))
        reply = self.replies.popleft() if self.replies else self.default
        if reply.stall_s:
            await asyncio.sleep(reply.stall_s)
        if reply.status != 200:
            return self._error(reply)
        render = self._ndjson if self.flavor == "ollama" else self._sse
        media_type = "application/x-ndjson" if self.flavor == "ollama" else "text/event-stream"
        return StreamingResponse(
            self._stream(reply, render(request.url.path, body)), media_type=media_type
        )

    async def _stream(
        self, reply: EngineReply, render: Callable[[str | None, EngineReply, int], bytes]
    ) -> AsyncIterator[bytes]:
        size = reply.chunk_chars
        pieces = [reply.content[i : i + size] for i in range(0, len(reply.content), size)]
        done = False
        try:
            for index, piece in enumerate(pieces):
                if index == reply.stall_after_chunks:
                    await asyncio.sleep(30)
                if index and reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield render(piece, reply, len(pieces))
            yield render(None, reply, len(pieces))
            done = True
            self.completed += 1
        finally:
            if not done:
                self.disconnects += 1
                self.hung_up.set()

    def _sse(
        self, path: str, body: dict[str, Any]
    ) -> Callable[[str | None, EngineReply, int], bytes]:
        chat = path.endswith("/chat/completions")
        completion_id = f"cmpl-{next(self._ids)}"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {"id": completion_id, "object": "chunk", "choices": choices, **extra}
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        def render(piece: str | None, reply: EngineReply, count: int) -> bytes:
            if piece is not None:
                content = {"delta": {"content": piece}} if chat else {"text": piece}
                return chunk([{"index": 0, **content, "finish_reason": None}])
            if reply.mid_stream_error:
                error = {"error": {"message": reply.mid_stream_error}}
                return b"data: " + orjson.dumps(error) + b"\n\n"
            empty = {"delta": {}} if chat else {"text": ""}
            tail = chunk([{"index": 0, **empty, "finish_reason": reply.finish_reason}])
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 7, "completion_tokens": count, "total_tokens": 7 + count}
                tail += chunk([], usage=usage)
            return tail + b"data: [DONE]\n\n"

        return render

    def _ndjson(
        self, path: str, _body: dict[str, Any]
    ) -> Callable[[str | None, EngineReply, int], bytes]:
        chat = path.endswith("/api/chat")

        def render(piece: str | None, reply: EngineReply, count: int) -> bytes:
            if reply.mid_stream_error and piece is None:
                return orjson.dumps({"error": reply.mid_stream_error}) + b"\n"
            text = piece or ""
            line: dict[str, Any] = (
                {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
            )
            line["done"] = piece is None
            if piece is None:
                line.update(done_reason=reply.finish_reason, prompt_eval_count=7, eval_count=count)
            return orjson.dumps(line) + b"\n"

        return render


@contextmanager
def serve_engine(engine: ScriptedEngine) -> Iterator[str]:
    with ServerThread(engine.app()) as server:
        yield server.url


@contextmanager
def serve_proxy(backend: str, engine: ScriptedEngine, **settings: Any) -> Iterator[str]:
    """llm-local with `backend` in front of `engine`; yields llm-local's URL once ready.

    The upstream URL takes each engine's usual form: vLLM and OpenAI with `/v1`, the
    llama.cpp server and Ollama as the server root."""
    with serve_engine(engine) as upstream:
        url = upstream if backend in ("llamacpp", "ollama") else f"{upstream}{engine.prefix}"
        proxy = local_settings(llm_backend=backend, llm_upstream_url=url, **settings)
        with serve_llm_local(proxy) as base_url:
            yield base_url
