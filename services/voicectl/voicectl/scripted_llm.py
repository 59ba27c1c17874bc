"""A scripted OpenAI-compatible chat server for tests and benchmarks.

It answers `POST /v1/chat/completions` (streaming or not) with exactly what it is
told: queued replies first, then the default. A reply can stall, fail with a
status, stream slowly or stop early. With no content given it answers with the
smallest object valid for the request's JSON schema, which makes an instant
stand-in LLM for benchmarks. It records every request and counts clients that
hung up mid-stream.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class ScriptedReply:
    content: str | None = None  # None: the smallest object valid for the request's schema
    chunk_chars: int = 12
    first_chunk_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    stall_s: float = 0.0  # before the response starts
    status: int = 200
    finish_reason: str = "stop"
    stop_reason: str | None = None  # e.g. "deadline", as llm-local reports a spent budget


@dataclass
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)


Responder = Callable[[dict[str, Any]], ScriptedReply]


def minimal_instance(schema: dict[str, Any]) -> Any:
    """The smallest value valid for `schema` (null where allowed, first enum member)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = schema[key]
            nullable = [o for o in options if o.get("type") == "null"]
            return None if nullable else minimal_instance(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "null" if "null" in kind else kind[0]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: minimal_instance(sub) for name, sub in props.items()}
    if kind == "array":
        return [minimal_instance(schema["items"])] * schema.get("minItems", 0)
    if kind == "string":
        return "ok".ljust(schema.get("minLength", 0), "k")
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema: dict[str, Any] = fmt.get("json_schema", {}).get("schema", {})
        return schema
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    return None


class ScriptedLLM:
    def __init__(self, default: ScriptedReply | Responder | None = None) -> None:
        self.default: ScriptedReply | Responder = default or ScriptedReply()
        self.queue: deque[ScriptedReply] = deque()
        self.requests: list[RecordedRequest] = []
        self.keep_requests = True
        self.disconnects = 0
        self.completed = 0
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
            ]
        )

    def push(self, *replies: ScriptedReply) -> None:
        self.queue.extend(replies)

    def _next_reply(self, body: dict[str, Any]) -> ScriptedReply:
        if self.queue:
            return self.queue.popleft()
        return self.default if isinstance(self.default, ScriptedReply) else self.default(body)

    async def _models(self, _request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _health(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        if self.keep_requests:
            self.requests.append(RecordedRequest(body=body, headers=dict(request.headers)))
        reply = self._next_reply(body)
        if reply.stall_s:
            await asyncio.sleep(reply.stall_s)
        if reply.status != 200:
            return JSONResponse(
                {"error": {"message": "scripted failure", "type": "server_error", "code": None}},
                status_code=reply.status,
            )
        content = reply.content
        if content is None:
            schema = request_schema(body)
            content = orjson.dumps(minimal_instance(schema)).decode() if schema else "ok"
        completion_id = f"chatcmpl-scripted-{next(self._ids)}"
        if not body.get("stream"):
            return JSONResponse(self._completion(completion_id, content, reply))
        return StreamingResponse(
            self._chunks(completion_id, content, reply, body), media_type="text/event-stream"
        )

    def _completion(self, completion_id: str, content: str, reply: ScriptedReply) -> dict[str, Any]:
        self.completed += 1
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage(content, reply),
        }

    async def _chunks(
        self, completion_id: str, content: str, reply: ScriptedReply, body: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            if reply.first_chunk_delay_s:
                await asyncio.sleep(reply.first_chunk_delay_s)
            pieces = [
                content[i : i + reply.chunk_chars]
                for i in range(0, len(content), reply.chunk_chars)
            ]
            for index, piece in enumerate(pieces):
                if index and reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield _sse(_chunk(completion_id, {"content": piece}, None))
            final = _chunk(completion_id, {}, reply.finish_reason)
            if reply.stop_reason:
                final["choices"][0]["stop_reason"] = reply.stop_reason
            yield _sse(final)
            if (body.get("stream_options") or {}).get("include_usage"):
                usage_chunk = _chunk(completion_id, None, None)
                usage_chunk["usage"] = _usage(content, reply)
                yield _sse(usage_chunk)
            yield b"data: [DONE]\n\n"
            finished = True
            self.completed += 1
        finally:
            if not finished:
                self.disconnects += 1


def _usage(content: str, reply: ScriptedReply) -> dict[str, int]:
    tokens = max(1, -(-len(content) // reply.chunk_chars))
    return {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}


def _chunk(completion_id: str, delta: dict[str, Any] | None, finish: str | None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "scripted",
        "choices": choices,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def main() -> None:
    """`python -m voicectl.scripted_llm PORT [STALL_S]`: the instant (or stalling) LLM of
    the benchmarks, as its own process."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("stall_s", type=float, nargs="?", default=0.0)
    args = parser.parse_args()
    llm = ScriptedLLM(ScriptedReply(stall_s=args.stall_s, chunk_chars=64))
    llm.keep_requests = False  # a long benchmark would hold every request body
    uvicorn.run(llm.app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
