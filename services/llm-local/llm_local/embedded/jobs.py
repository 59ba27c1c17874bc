"""A request as the decode thread sees it, and the way its events get back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_local.backends.base import BackendError, SamplingParams, StreamEvent

# What the decode thread sends back: stream events, or the error that ends the stream.
Outcome = StreamEvent | BackendError
Deliver = Callable[[list[Outcome]], None]


@dataclass(eq=False, slots=True)
class Job:
    request_id: str
    tokens: list[int]
    params: SamplingParams
    # Called from the decode thread; must hand the outcomes to the consumer thread-safely.
    deliver: Deliver
    # A leading run of `tokens` shared across requests (the formatted system prompt).
    prefix: tuple[int, ...] | None = None
    grammar: str | None = None  # GBNF text
    deadline: float | None = None  # time.monotonic()
    submitted_at: float = field(default_factory=time.monotonic)
    # Set by the consumer when it stops listening; the decode thread drops the job.
    cancelled: bool = False
