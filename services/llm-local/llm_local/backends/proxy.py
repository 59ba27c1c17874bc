"""The shared base of the proxy backends: one streaming httpx client per backend.

Every request is streamed from the upstream, also when the client asked for one
JSON body: one code path bounds it by the caller's deadline, closes the upstream
connection when our client goes away (the engine then stops generating), cuts a
JSON answer that runs away in whitespace, and maps upstream failures to
OpenAI-shaped errors carrying the upstream's own message.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from llm_local.backends.base import (
    Backend,
    BackendError,
    BackendStats,
    DeadlineExceeded,
    Finished,
    FinishReason,
    GenerationRequest,
    InvalidRequest,
    NotReady,
    Overloaded,
    SchemaUnsupported,
    StreamEvent,
    TextDelta,
    UpstreamError,
)
from llm_local.settings import LlmSettings

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 5.0
PROBE_INTERVAL_S = (1.0, 10.0)  # first retry, slowest retry while the upstream is not up
UNREACHABLE_RETRY_AFTER_S = 5.0
MAX_ERROR_MESSAGE_CHARS = 500
JSON_WHITESPACE = frozenset(" \t\n\r")


class UpstreamRejected(InvalidRequest):
    """The upstream refused the request as invalid (400): the client's to fix, not ours."""

    code = "upstream_rejected"


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpstreamText:
    text: str


@dataclass(frozen=True, slots=True)
class UpstreamDone:
    finish_reason: FinishReason
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


UpstreamPiece = UpstreamText | UpstreamDone


def redact_url(url: str) -> str:
    """`url` without credentials, query or fragment: safe for /config and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


# Where JSON Schema nests schemas, so keyword search never mistakes a property name
# or an enum value for a keyword.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_VALUES = (
    "items",
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "prefixItems",
)


def _subschemas(schema: dict[str, Any], path: str) -> Iterator[tuple[Any, str]]:
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                yield sub, f"{path}/{key}/{name}"
    for key in _SCHEMA_VALUES:
        value = schema.get(key)
        if isinstance(value, list):
            for index, sub in enumerate(value):
                yield sub, f"{path}/{key}/{index}"
        elif value is not None:
            yield value, f"{path}/{key}"


def find_unsupported_keyword(
    schema: Any, keywords: frozenset[str], path: str = ""
) -> tuple[str, str] | None:
    """The first of `keywords` used anywhere in `schema`, with its JSON pointer."""
    if not isinstance(schema, dict):
        return None
    for key in schema:
        if key in keywords:
            return key, path or "/"
    for sub, sub_path in _subschemas(schema, path):
        if found := find_unsupported_keyword(sub, keywords, sub_path):
            return found
    return None


class JsonWhitespaceGuard:
    """Spots a JSON answer emitting more than `limit` whitespace characters in a row
    outside strings: engines whose grammar allows unbounded whitespace can loop on it
    until the token cap (vllm-project/vllm#38696, ollama/ollama#18567)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._run = 0
        self._in_string = False
        self._escaped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """The part of `text` to pass on, and whether the answer must be cut after it."""
        for index, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char in JSON_WHITESPACE:
                self._run += 1
                if self._run > self.limit:
                    return text[:index], True
            else:
                self._run = 0
                self._in_string = char == '"'
        return text, False


def error_text(body: Any) -> str:
    """The human message in an upstream's error, whatever its engine's shape:
    `{"error": {"message"}}` (OpenAI, vLLM), `{"error": "..."}` (Ollama), `{"detail"}`."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or error
        if isinstance(error, str):
            return error[:MAX_ERROR_MESSAGE_CHARS]
    return str(body)[:MAX_ERROR_MESSAGE_CHARS]


def upstream_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace").strip()[:MAX_ERROR_MESSAGE_CHARS]
    return error_text(body)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return float(value)
    except ValueError:
        return None


class ProxyBackend(Backend):
    """An engine behind HTTP. Subclasses say where to send a request, in which
    fields, and how to read the engine's stream back."""

    # Schema keywords this engine cannot enforce; `check_schema` refuses them.
    unsupported_keywords: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self, settings: LlmSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.upstream_url = settings.upstream_url
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._ready = False
        self._active = 0

    # What each engine defines.

    @property
    @abc.abstractmethod
    def probe_url(self) -> str:
        """A cheap GET that answers 200 once the engine serves requests."""

    @abc.abstractmethod
    def build_call(self, request: GenerationRequest) -> UpstreamCall:
        """The engine's own request for `request`, always streaming."""

    @abc.abstractmethod
    def parse_stream(self, lines: AsyncIterator[str]) -> AsyncGenerator[UpstreamPiece, None]:
        """The engine's stream as text pieces ending with one `UpstreamDone`."""

    # Backend.

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def model(self) -> str:
        return self.settings.model_name

    async def start(self) -> None:
        headers = {}
        if self.settings.llm_upstream_api_key:
            headers["Authorization"] = f"Bearer {self.settings.llm_upstream_api_key}"
        self._client = httpx.AsyncClient(
            transport=self._transport,
            headers=headers,
            # Reads are bounded by each request's deadline instead: a generation may be long.
            timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=None),
        )
        wait_s, slowest_s = PROBE_INTERVAL_S
        while not await self._probe(self._client):
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, slowest_s)
        self._ready = True
        log.info("upstream_ready", backend=self.name, upstream=redact_url(self.upstream_url))

    async def close(self) -> None:
        self._ready = False
        if self._client is not None:
            await self._client.aclose()

    def check_schema(self, schema: dict[str, Any]) -> None:
        found = find_unsupported_keyword(schema, self.unsupported_keywords)
        if found is not None:
            keyword, path = found
            raise SchemaUnsupported(
                f"the {self.name} backend cannot enforce the JSON schema keyword "
                f"{keyword!r} (at {path})"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "upstream_url": redact_url(self.upstream_url),
            "json_whitespace_limit": self.settings.llm_json_whitespace_limit,
            "unsupported_schema_keywords": sorted(self.unsupported_keywords),
        }

    def stats(self) -> BackendStats:
        return BackendStats(active=self._active)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        client = self._require_client()
        deadline = request.deadline
        if deadline is None:
            deadline = time.monotonic() + self.settings.llm_request_timeout_s
        call = self.build_call(request)
        self._active += 1
        try:
            response = await self._open(client, call, deadline)
            try:
                async for event in self._events(response, request, deadline):
                    yield event
            finally:
                # Closing the connection is what tells the engine to stop generating.
                await asyncio.shield(response.aclose())
        finally:
            self._active -= 1

    # Shared plumbing.

    async def post_json(self, url: str, body: dict[str, Any]) -> Any:
        """One non-streaming call (embeddings), bounded by the default request timeout."""
        client = self._require_client()
        deadline = time.monotonic() + self.settings.llm_request_timeout_s
        response = await self._open(client, UpstreamCall(url, body), deadline)
        try:
            async with asyncio.timeout_at(deadline):
                raw = await response.aread()
        except TimeoutError:
            raise DeadlineExceeded(f"the {self.name} upstream did not answer in time") from None
        finally:
            await response.aclose()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"the {self.name} upstream answered with invalid JSON") from None

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None or not self._ready:
            raise NotReady(
                f"waiting for the {self.name} upstream at {redact_url(self.upstream_url)}",
                retry_after=UNREACHABLE_RETRY_AFTER_S,
            )
        return self._client

    async def _probe(self, client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get(self.probe_url, timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError as exc:
            log.warning("upstream_unreachable", backend=self.name, error=type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("upstream_not_ready", backend=self.name, status=response.status_code)
        return response.status_code == 200

    async def _open(
        self, client: httpx.AsyncClient, call: UpstreamCall, deadline: float
    ) -> httpx.Response:
        request = client.build_request(
            "POST",
            call.url,
            content=orjson.dumps(call.body),
            headers={"Content-Type": "application/json"},
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.send(request, stream=True)
        except TimeoutError:
            raise DeadlineExceeded(
                f"the {self.name} upstream did not start answering before the deadline",
                retry_after=1.0,
            ) from None
        except httpx.PoolTimeout:
            raise Overloaded(
                f"too many requests in flight to the {self.name} upstream", retry_after=1.0
            ) from None
        except httpx.HTTPError as exc:
            raise NotReady(
                f"the {self.name} upstream at {redact_url(self.upstream_url)} is unreachable "
                f"({type(exc).__name__})",
                retry_after=UNREACHABLE_RETRY_AFTER_S,
            ) from None
        if response.status_code == 200:
            return response
        try:
            raise await self._upstream_failure(response, deadline)
        finally:
            await response.aclose()

    async def _upstream_failure(self, response: httpx.Response, deadline: float) -> BackendError:
        try:
            async with asyncio.timeout_at(deadline):
                raw = await response.aread()
        except (TimeoutError, httpx.HTTPError):
            raw = b""
        status = response.status_code
        message = (
            f"the {self.name} upstream answered {status}: "
            f"{upstream_message(raw) or response.reason_phrase}"
        )
        if status in (400, 413, 422):
            return UpstreamRejected(message)
        if status == 429:
            return Overloaded(message, retry_after=_retry_after(response))
        if status == 503:
            return NotReady(message, retry_after=_retry_after(response))
        # 401/403/404 and 5xx: our configuration or the engine failed, not the client.
        return UpstreamError(message)

    async def _events(
        self, response: httpx.Response, request: GenerationRequest, deadline: float
    ) -> AsyncIterator[StreamEvent]:
        guard = None
        if request.json_schema is not None:
            guard = JsonWhitespaceGuard(self.settings.llm_json_whitespace_limit)
        pieces = self.parse_stream(response.aiter_lines())
        sent = 0  # upstream chunks carry about one token each
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        piece = await anext(pieces)
                except TimeoutError:
                    yield Finished("length", 0, sent, stop_cause="deadline")
                    return
                except StopAsyncIteration:
                    raise UpstreamError(
                        f"the {self.name} upstream ended its stream without finishing"
                    ) from None
                except httpx.HTTPError as exc:
                    raise UpstreamError(
                        f"the {self.name} upstream stream broke ({type(exc).__name__})"
                    ) from None
                if isinstance(piece, UpstreamDone):
                    completion_tokens = piece.completion_tokens
                    yield Finished(
                        piece.finish_reason,
                        piece.prompt_tokens or 0,
                        sent if completion_tokens is None else completion_tokens,
                    )
                    return
                text, runaway = piece.text, False
                if guard is not None:
                    text, runaway = guard.feed(text)
                if text:
                    sent += 1
                    yield TextDelta(text)
                if runaway:
                    log.warning(
                        "json_whitespace_runaway", backend=self.name, request_id=request.request_id
                    )
                    yield Finished("length", 0, sent)
                    return
        finally:
            await pieces.aclose()


def load_chunk(name: str, data: str) -> dict[str, Any]:
    """One JSON object of an upstream stream; anything else is the upstream's failure."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"the {name} upstream sent invalid JSON in its stream") from None
    if not isinstance(chunk, dict):
        raise UpstreamError(f"the {name} upstream sent an unexpected stream item")
    if chunk.get("error"):
        raise UpstreamError(f"the {name} upstream failed mid-stream: {error_text(chunk)}")
    return chunk
