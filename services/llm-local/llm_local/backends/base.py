"""The interface every backend implements; the API layer knows nothing else.

A request arrives as a `GenerationRequest`, already validated and with the
OpenAI `response_format` resolved into `json_schema`. The backend streams
`TextDelta`s and ends with exactly one `Finished`. The API layer stops
iterating (and calls `aclose()` on the iterator) when the client goes away;
a backend must then stop generating within one token.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length"]
# Why a stream stopped when finish_reason alone cannot say: the caller's deadline
# passed. Sent to clients as the choice's `stop_reason` (vLLM's field name).
StopCause = Literal["deadline"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One chat (``messages``) or completion (``prompt``) request; exactly one is set."""

    request_id: str
    params: SamplingParams
    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    # The JSON schema the output must satisfy; None: free text. `{"type": "object"}`
    # stands for OpenAI's `json_object`.
    json_schema: dict[str, Any] | None = None
    # time.monotonic() at which generation must stop (the caller's deadline).
    deadline: float | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    stop_cause: StopCause | None = None
    # Prompt tokens whose KV came from the prefix cache (OpenAI's `cached_tokens`).
    cached_tokens: int | None = None


StreamEvent = TextDelta | Finished


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: list[list[float]]
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class PrefillResult:
    """What `POST /v1/prefill` answers: the prompt's size, how much of it was already
    decoded, and how much is now queued for decoding (0 when `queued` is false)."""

    prompt_tokens: int
    cached_tokens: int
    prefilled_tokens: int
    queued: bool


@dataclass(frozen=True, slots=True)
class PrefixCacheStats:
    """Counters and levels of a backend's prefix cache, for /metrics."""

    lookups: int = 0  # requests that looked for a cached prefix
    hits: int = 0  # ... and found one
    prompt_tokens: int = 0  # prompt tokens of those requests
    cached_tokens: int = 0  # ... served from the cache
    cells: int = 0  # KV cells in use, by running requests and cached prefixes
    idle_cells: int = 0  # ... by cached prefixes only (evictable)
    sequences: int = 0  # cached prefixes kept
    evictions: int = 0
    prefills: dict[str, int] = field(default_factory=dict)  # prefill requests by outcome


@dataclass(slots=True)
class BackendStats:
    """Live numbers for /metrics and /config."""

    queue_depth: int = 0  # requests waiting for a slot
    active: int = 0  # requests generating now
    extra: dict[str, float] = field(default_factory=dict)
    prefix_cache: PrefixCacheStats | None = None


class BackendError(Exception):
    """A failure the API layer turns into an OpenAI-shaped error response."""

    status = 500
    type = "server_error"
    code = "backend_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidRequest(BackendError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class SchemaUnsupported(InvalidRequest):
    """The schema uses a keyword this backend cannot enforce; the message names it."""

    code = "unsupported_schema"


class Unsupported(InvalidRequest):
    """The backend does not offer this endpoint or input (e.g. images, embeddings)."""

    code = "unsupported"


class Overloaded(BackendError):
    """Too many requests queued; answered with 429 and Retry-After."""

    status = 429
    type = "rate_limit_error"
    code = "overloaded"


class NotReady(BackendError):
    """The model is loading or the upstream is unreachable; 503 with Retry-After."""

    status = 503
    type = "server_error"
    code = "not_ready"


class DeadlineExceeded(NotReady):
    """The caller's deadline passed before generation started (503, Retry-After)."""

    code = "deadline_exceeded"


class UpstreamError(BackendError):
    """The upstream engine failed or answered with an error."""

    status = 502
    type = "server_error"
    code = "upstream_error"


class Backend(abc.ABC):
    """An LLM engine. One instance serves the whole process."""

    name: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model or check the upstream. Called once at start-up; may take long."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop generating and release the model or the HTTP client."""

    @property
    @abc.abstractmethod
    def ready(self) -> bool:
        """True once `start` has finished and requests can be served."""

    @property
    @abc.abstractmethod
    def model(self) -> str:
        """The model name clients see in /v1/models and responses."""

    @abc.abstractmethod
    def check_schema(self, schema: dict[str, Any]) -> None:
        """Raise SchemaUnsupported naming the keyword if `schema` cannot be enforced."""

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Generate: `TextDelta`s, then one `Finished`. Raises BackendError subclasses."""

    async def prefill(self, messages: Sequence[Message]) -> PrefillResult | None:
        """Decode the prompt these messages render to into the prefix cache, without
        generating; None when the backend has no prefix cache of its own to fill."""
        return None

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        raise Unsupported(f"the {self.name} backend does not serve embeddings")

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Backend settings for /config. Never a secret."""

    def stats(self) -> BackendStats:
        return BackendStats()
