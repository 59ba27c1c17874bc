"""Running one generation as an HTTP response: OpenAI SSE chunks or one JSON body.

The response waits for the backend's first event before it sends a status, so
overload, a queue deadline or an upstream failure still answer with their own
status code. Meanwhile and afterwards it watches the connection: when the
client goes away it stops iterating the backend's stream and closes it, which
stops the generation.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
import structlog
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from llm_local.api_models import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    Completion,
    CompletionChoice,
    PromptTokensDetails,
    Usage,
)
from llm_local.backends.base import BackendError, DeadlineExceeded, Finished, StreamEvent, TextDelta
from llm_local.errors import backend_error_response
from llm_local.metrics import GenerationWatch
from svckit.errors import error_body

log = structlog.get_logger(__name__)

SSE_DONE = b"data: [DONE]\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # reverse proxies must not buffer the stream
]
# How long past the caller's deadline a backend may take to end its stream before
# the API layer ends it: backends stop at the deadline themselves, this is the backstop.
DEADLINE_GRACE_S = 1.0


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _usage(finished: Finished) -> Usage:
    cached = finished.cached_tokens
    return Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
        prompt_tokens_details=None if cached is None else PromptTokensDetails(cached_tokens=cached),
    )


class Renderer(abc.ABC):
    """Turns generation events into one endpoint's OpenAI objects."""

    def __init__(self, response_id: str, model: str, *, include_usage: bool) -> None:
        self.response_id = response_id
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse(
            {
                "id": self.response_id,
                "object": self.chunk_object,
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": choices,
                **extra,
            }
        )

    def usage_chunk(self, finished: Finished) -> bytes:
        return self.chunk([], usage=_usage(finished).model_dump())

    chunk_object: str

    @abc.abstractmethod
    def opening(self) -> bytes:
        """What the stream starts with before any text (may be empty)."""

    @abc.abstractmethod
    def delta(self, text: str) -> bytes: ...

    @abc.abstractmethod
    def finish(self, finished: Finished) -> bytes: ...

    @abc.abstractmethod
    def body(self, text: str, finished: Finished) -> bytes:
        """The whole answer as one JSON body."""


class ChatRenderer(Renderer):
    chunk_object = "chat.completion.chunk"

    def opening(self) -> bytes:
        return self.chunk([_choice(delta={"role": "assistant", "content": ""})])

    def delta(self, text: str) -> bytes:
        return self.chunk([_choice(delta={"content": text})])

    def finish(self, finished: Finished) -> bytes:
        return self.chunk([_choice(delta={}, finished=finished)])

    def body(self, text: str, finished: Finished) -> bytes:
        completion = ChatCompletion(
            id=self.response_id,
            created=self.created,
            model=self.model,
            choices=[
                ChatChoice(
                    message=AssistantMessage(content=text),
                    finish_reason=finished.finish_reason,
                    stop_reason=finished.stop_cause,
                )
            ],
            usage=_usage(finished),
        )
        return completion.model_dump_json().encode()


class CompletionRenderer(Renderer):
    chunk_object = "text_completion"

    def opening(self) -> bytes:
        return b""

    def delta(self, text: str) -> bytes:
        return self.chunk([_choice(text=text)])

    def finish(self, finished: Finished) -> bytes:
        return self.chunk([_choice(text="", finished=finished)])

    def body(self, text: str, finished: Finished) -> bytes:
        completion = Completion(
            id=self.response_id,
            created=self.created,
            model=self.model,
            choices=[
                CompletionChoice(
                    text=text,
                    finish_reason=finished.finish_reason,
                    stop_reason=finished.stop_cause,
                )
            ],
            usage=_usage(finished),
        )
        return completion.model_dump_json().encode()


def _choice(*, finished: Finished | None = None, **content: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, **content, "logprobs": None, "finish_reason": None}
    if finished is not None:
        choice["finish_reason"] = finished.finish_reason
        choice["stop_reason"] = finished.stop_cause
    return choice


class GenerationResponse(Response):
    """An ASGI response that runs one generation and stops it if the client goes away."""

    def __init__(
        self,
        events: AsyncIterator[StreamEvent],
        renderer: Renderer,
        watch: GenerationWatch,
        *,
        stream: bool,
        deadline: float,
    ) -> None:
        super().__init__()
        self._events = events
        self._renderer = renderer
        self._watch = watch
        self._stream = stream
        self._backstop = deadline + DEADLINE_GRACE_S
        self._text_events = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = asyncio.create_task(self._run(scope, receive, send))
        hangup = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait((run, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
            if not run.done():
                run.cancel()
                self._watch.disconnected()
            await asyncio.wait((run,))
            await close_stream(self._events)
        if not run.cancelled() and isinstance(run.exception(), OSError):
            self._watch.disconnected()
            return
        if not run.cancelled():
            run.result()

    async def _next(self) -> StreamEvent:
        try:
            async with asyncio.timeout_at(self._backstop):
                event = await anext(self._events)
        except StopAsyncIteration:
            raise BackendError("the backend ended the stream without finishing") from None
        except TimeoutError:
            if not self._text_events:
                raise DeadlineExceeded("the deadline passed before generation started") from None
            log.warning("backend_missed_deadline", request_id=self._renderer.response_id)
            event = Finished("length", 0, self._text_events, stop_cause="deadline")
        if isinstance(event, TextDelta):
            self._text_events += 1
        self._watch.event(event)
        return event

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._stream:
            await self._send_stream(scope, receive, send)
        else:
            await self._send_body(scope, receive, send)

    async def _send_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts: list[str] = []
        try:
            while isinstance(event := await self._next(), TextDelta):
                parts.append(event.text)
        except BackendError as exc:
            self._watch.failed(exc)
            await backend_error_response(exc)(scope, receive, send)
            return
        body = self._renderer.body("".join(parts), event)
        await Response(body, media_type="application/json")(scope, receive, send)

    async def _send_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            event = await self._next()
        except BackendError as exc:
            self._watch.failed(exc)
            await backend_error_response(exc)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        renderer = self._renderer
        chunks = [renderer.opening()]
        try:
            while isinstance(event, TextDelta):
                chunks.append(renderer.delta(event.text))
                await _send_chunk(send, b"".join(chunks))
                chunks.clear()
                event = await self._next()
            chunks.append(renderer.finish(event))
            if renderer.include_usage:
                chunks.append(renderer.usage_chunk(event))
        except BackendError as exc:
            self._watch.failed(exc)
            chunks.append(sse(error_body(exc.code, exc.message, shape="openai", type_=exc.type)))
        except OSError:
            raise  # the client went away (servers of ASGI spec 2.4 say so on send)
        except Exception as exc:
            log.error("stream_failed", error_type=type(exc).__name__, exc_info=exc)
            self._watch.failed(BackendError("internal error"))
            body = error_body(
                "internal_error", "internal error", shape="openai", type_="server_error"
            )
            chunks.append(sse(body))
        chunks.append(SSE_DONE)
        await _send_chunk(send, b"".join(chunks))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def close_stream(events: AsyncIterator[StreamEvent]) -> None:
    """Close a backend's stream: that is what stops its generation."""
    if isinstance(events, AsyncGenerator):
        await events.aclose()


async def _send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
