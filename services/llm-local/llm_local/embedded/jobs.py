"""Work as the decode thread sees it, and the way results get back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_local.backends.base import BackendError, PrefillResult, SamplingParams, StreamEvent

# What the decode thread sends back: stream events, or the error that ends the stream.
Outcome = StreamEvent | BackendError
Deliver = Callable[[list[Outcome]], None]


@dataclass(eq=False, slots=True)
class Job:
    """A generation request."""

    request_id: str
    tokens: list[int]
    params: SamplingParams
    # Called from the decode thread; must hand the outcomes to the consumer thread-safely.
    deliver: Deliver
    grammar: str | None = None  # GBNF text
    schema: dict[str, Any] | None = None  # the normalised schema the grammar enforces
    deadline: float | None = None  # time.monotonic()
    # Set by the consumer when it stops listening; the decode thread drops the job.
    cancelled: bool = False


@dataclass(eq=False, slots=True)
class PrefillJob:
    """A prompt to decode into the prefix cache, in the background, without generating."""

    tokens: list[int]
    # Called once from the decode thread, as soon as the job is accepted or refused.
    answer: Callable[[PrefillResult | BackendError], None]
