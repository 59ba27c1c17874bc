"""Wire models of the REST turn API, shared by dm (which serves them) and the gateway.

These mirror CONTRACT.md field for field; a change here is a contract change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_TEXT_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
CallerText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)
]
FallbackReason = Literal["deadline", "llm_error", "invalid_output"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallCreate(Request):
    flow: Identifier
    lang: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
    call_id: Identifier | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TurnRequest(Request):
    turn_id: Identifier
    text: CallerText


class InterruptRequest(Request):
    """What the caller heard of the reply before barging in (dm-internal, used by the gateway)."""

    heard: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""


class CallCreated(BaseModel):
    call_id: str
    flow: str
    lang: str
    node: str
    reply: str
    state_version: int


class Timings(BaseModel):
    total_ms: float
    llm_ms: float
    llm_ttft_ms: float | None
    state_ms: float


class Usage(BaseModel):
    completion_tokens: int


class TurnResult(BaseModel):
    call_id: str
    turn_id: str
    node_before: str
    reply: str
    next_node: str
    slots: dict[str, Any]
    backchannel: str | None
    done: bool
    fallback: bool
    fallback_reason: FallbackReason | None
    timings: Timings
    usage: Usage
    state_version: int


# Turn events: the SSE events of a streamed turn and the WebSocket messages of the gateway.
EVENT_BACKCHANNEL = "backchannel"
EVENT_REPLY_DELTA = "reply.delta"
EVENT_TURN_DONE = "turn.done"
EVENT_ERROR = "error"
