"""What dm keeps per call, as stored in Redis (the version lives beside it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from svckit.wire import Outcome


class Exchange(BaseModel):
    """One turn as the call remembers it: the caller's words and what the agent said."""

    model_config = ConfigDict(extra="ignore")

    turn_id: str
    node: str
    user: str
    agent: str


class Interruption(BaseModel):
    """The caller barged in on a turn: what of its reply they heard, and whether the
    turn was cancelled before it was applied."""

    heard: str
    cancelled: bool
    user: str = ""  # the caller's words of a cancelled turn
    at: float


class CallState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    call_id: str
    flow: str
    lang: str
    region: str = ""  # ISO 3166 alpha-2: how national phone numbers are read
    # A label of the API key that created the call (a hash, never the key): only that key
    # may see or change it. Empty: calls made without keys.
    owner: str = ""
    node: str
    greeting: str
    slots: dict[str, Any] = Field(default_factory=dict)
    partial_phone: str = ""  # digits of a number heard only in part
    turns: int = 0  # turns applied
    node_turns: int = 0  # turns spent at the current node
    failures: int = 0  # turns at the current node that changed nothing
    history: list[Exchange] = Field(default_factory=list)
    last_backchannel: str | None = None
    # Interview: the candidate's answer per scored question, and its assessment
    # (dm.interview.rubric.Assessment as JSON: score, evidence, flags with quotes).
    answers: dict[str, str] = Field(default_factory=dict)
    assessments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ended: bool = False
    end_reason: str | None = None
    purged: bool = False  # ended by DELETE: the transcript is gone, the summary kept
    outcome: Outcome | None = None  # set when a final node is reached
    transfer_reason: str | None = None  # "caller_asked" or "not_understood"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    updated_at: float

    def red_flags(self) -> list[str]:
        """The red flags raised so far, each backed by a quote of the candidate."""
        flags = (f["flag"] for a in self.assessments.values() for f in a.get("red_flags", ()))
        return list(dict.fromkeys(flags))
