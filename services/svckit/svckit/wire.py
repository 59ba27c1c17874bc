"""Wire models of the REST turn API, shared by dm (which serves them) and the gateway.

These mirror CONTRACT.md field for field; a change here is a contract change.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# 1-64 characters of [A-Za-z0-9_.:-], at least one a letter or digit (so never "." or "..").
# No look-ahead: the same pattern runs under Python's re and pydantic's Rust regex.
ID_PATTERN = r"^[_.:-]{0,63}[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
ID_MAX_CHARS = 64
MAX_TEXT_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024
# metadata: small and flat, as the contract says.
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


def normalize_text(text: str) -> str:
    """NFKC (compatibility digits and letters become plain ones: "²" -> "2", "①" -> "1"),
    control and invisible characters dropped, whitespace runs made one space.

    Raises ValueError when nothing visible is left.
    """
    text = unicodedata.normalize("NFKC", text)
    kept = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or unicodedata.category(char)[0] != "C"
    )
    text = " ".join(kept.split())
    if not text:
        raise ValueError("text has no visible characters")
    return text


def _flat_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise ValueError(f"keys are at most {MAX_METADATA_KEY_CHARS} characters")
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise ValueError("values are strings, numbers, booleans or null (flat, no nesting)")
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
            raise ValueError(f"string values are at most {MAX_METADATA_VALUE_CHARS} characters")
    return metadata


Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=ID_MAX_CHARS)]
CallerText = Annotated[
    str,
    StringConstraints(max_length=MAX_TEXT_CHARS),
    AfterValidator(normalize_text),
]
Metadata = Annotated[dict[str, Any], AfterValidator(_flat_metadata)]
FallbackReason = Literal["deadline", "llm_error", "invalid_output"]
Outcome = Literal["completed", "transfer"]
UnderstoodBy = Literal["rules", "llm"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallCreate(Request):
    flow: Identifier
    lang: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
    call_id: Identifier | None = None
    # ISO 3166 alpha-2: how national phone numbers are read.
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    metadata: Metadata = Field(default_factory=dict)


class TurnRequest(Request):
    turn_id: Identifier
    text: CallerText


class PartialRequest(Request):
    """What the caller has said so far of an utterance (dm-internal, used by the gateway)."""

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
    outcome: Outcome | None = None  # how the call ended, when `done`
    understood_by: UnderstoodBy = "llm"  # "rules": decided without the LLM


# Turn events: the SSE events of a streamed turn and the WebSocket messages of the gateway.
EVENT_BACKCHANNEL = "backchannel"
EVENT_REPLY_DELTA = "reply.delta"
EVENT_TURN_DONE = "turn.done"
EVENT_ERROR = "error"
