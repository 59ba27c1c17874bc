"""The call WebSocket's protocol core: no I/O, only state and decisions.

`CallSession` takes what happens on one socket (a client frame, an event from
dm, the outcome of a dm request) and returns the actions the transport must
carry out: messages to send, dm requests to make, a close. It validates every
client message against CONTRACT.md and tracks the call's turn: which turn is
current, the reply text sent for it (what the caller heard, on a barge-in),
and whether the agent is speaking it.

Decisions where the contract is silent:
- Unknown fields are refused (`invalid_field`), like unknown types (`unknown_type`).
- A barge-in (`interrupt`, or `user.partial` with words while the agent speaks)
  on the current turn always gets one `turn.cancelled`: while the turn is in
  flight dm cancels it; once it is done but still being spoken, dm records what
  was heard. Repeats are ignored.
- `interrupt` or `playback.done` naming a turn other than the current one →
  `unknown_turn`.
- `call.end` during a turn cancels it first (with `turn.cancelled`).
- `user.partial` with words is forwarded to dm (the transport coalesces them), which
  prepares the turn while the caller is still speaking.
- A call that ends in a transfer says `call.transfer` (the summary's reason) before
  `call.ended`. After `call.ended` the server closes the socket with 1000.
- A call this key may not see (`call_not_found` on `call.start`), or no `call.start`
  in time after the handshake, closes the socket with 1008.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, assert_never

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from svckit.wire import (
    EVENT_BACKCHANNEL,
    EVENT_ERROR,
    EVENT_REPLY_DELTA,
    EVENT_TURN_DONE,
    MAX_TEXT_CHARS,
    CallerText,
    Identifier,
    Metadata,
)

EVENT_TURN_CANCELLED = "turn.cancelled"
EVENT_CALL_TRANSFER = "call.transfer"
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
TRANSFER_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallStart(_ClientMessage):
    type: Literal["call.start"]
    flow: Identifier
    lang: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]
    metadata: Metadata = Field(default_factory=dict)


class UserPartial(_ClientMessage):
    type: Literal["user.partial"]
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]


class UserFinal(_ClientMessage):
    type: Literal["user.final"]
    turn_id: Identifier
    text: CallerText


class Interrupt(_ClientMessage):
    type: Literal["interrupt"]
    turn_id: Identifier


class PlaybackDone(_ClientMessage):
    type: Literal["playback.done"]
    turn_id: Identifier


class CallEnd(_ClientMessage):
    type: Literal["call.end"]
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None


ClientMessage = CallStart | UserPartial | UserFinal | Interrupt | PlaybackDone | CallEnd
MESSAGE_MODELS: dict[str, type[ClientMessage]] = {
    "call.start": CallStart,
    "user.partial": UserPartial,
    "user.final": UserFinal,
    "interrupt": Interrupt,
    "playback.done": PlaybackDone,
    "call.end": CallEnd,
}


class BadMessage(Exception):
    """A client frame that is not a valid message; answered with an `error` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_client_message(frame: str | bytes) -> ClientMessage:
    if isinstance(frame, bytes):
        raise BadMessage("unsupported_frame", "binary frames are not accepted; send JSON text")
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise BadMessage("malformed", "the frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("malformed", "a message is a JSON object")
    kind = data.get("type")
    model = MESSAGE_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(MESSAGE_MODELS)
        raise BadMessage("unknown_type", f"unknown message type; one of {known}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadMessage("invalid_field", describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """Field names and rules only: the rejected value may be the caller's words."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "message"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def has_words(text: str) -> bool:
    return any(char.isalnum() for char in text)


# Actions for the transport.


class LatencyMark(enum.Enum):
    BACKCHANNEL = "backchannel"
    FIRST_DELTA = "first_delta"


@dataclass(frozen=True, slots=True)
class Send:
    """Send one text frame; `kind` is its message type, `code` an error's code or a
    transfer's reason (what metrics count it by)."""

    text: str
    kind: str
    code: str | None = None
    turn_seq: int | None = None
    mark: LatencyMark | None = None


@dataclass(frozen=True, slots=True)
class OpenCall:
    """Create the call in dm, or resume it if it exists; answer with `call_opened`."""

    flow: str
    lang: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StartTurn:
    """Stream the turn from dm, feeding each event to `turn_event` under `seq`."""

    seq: int
    turn_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CancelTurn:
    """Tell dm the caller barged in on turn `seq` having heard `heard`."""

    seq: int
    turn_id: str
    heard: str
    trigger: str  # "interrupt", "partial" or "call_end"


@dataclass(frozen=True, slots=True)
class ForwardPartial:
    """Tell dm what the caller is saying so far (the transport coalesces these)."""

    text: str


@dataclass(frozen=True, slots=True)
class EndCall:
    """End the call in dm (idempotent) and answer with `call_ended`."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = Send | OpenCall | StartTurn | CancelTurn | ForwardPartial | EndCall | Close


def message(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def error(code: str, text: str) -> Send:
    return Send(message(EVENT_ERROR, code=code, message=text), EVENT_ERROR, code=code)


# State.


class Phase(enum.Enum):
    NEW = "new"  # waiting for call.start
    OPENING = "opening"  # call.start is with dm
    LIVE = "live"
    ENDING = "ending"  # the call is being ended in dm
    ENDED = "ended"


class TurnStatus(enum.Enum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass
class Turn:
    seq: int  # tells a turn from an earlier one that reused its turn_id
    turn_id: str
    status: TurnStatus = TurnStatus.RUNNING
    sent: list[str] = field(default_factory=list)  # reply pieces sent to the client
    speaking: bool = False

    @property
    def heard(self) -> str:
        return "".join(self.sent)


class CallSession:
    """One call's protocol state on one socket."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.phase = Phase.NEW
        self.turn: Turn | None = None
        self._seq = 0
        self._start_overdue = False  # the call.start deadline passed while dm was opening

    # Client frames.

    def receive(self, frame: str | bytes) -> list[Action]:
        try:
            msg = parse_client_message(frame)
        except BadMessage as exc:
            return [error(exc.code, exc.message)]
        if isinstance(msg, CallStart):
            return self._call_start(msg)
        if self.phase in (Phase.NEW, Phase.OPENING):
            return [error("call_not_started", "send call.start first")]
        if self.phase is not Phase.LIVE:
            return [error("call_ended", f"call '{self.call_id}' is over")]
        match msg:
            case UserFinal():
                return self._user_final(msg)
            case UserPartial():
                if not has_words(msg.text):
                    return []
                turn = self.turn
                actions: list[Action] = []
                if turn is not None and turn.speaking:
                    actions += self._barge_in(turn, "partial")
                return [*actions, ForwardPartial(msg.text)]
            case Interrupt():
                turn = self._current(msg.turn_id)
                if turn is None:
                    return [self._unknown_turn(msg.turn_id)]
                return self._barge_in(turn, "interrupt")
            case PlaybackDone():
                turn = self._current(msg.turn_id)
                if turn is None:
                    return [self._unknown_turn(msg.turn_id)]
                turn.speaking = False
                return []
            case CallEnd():
                return self._call_end()
        assert_never(msg)

    def _call_start(self, msg: CallStart) -> list[Action]:
        if self.phase is Phase.NEW:
            self.phase = Phase.OPENING
            return [OpenCall(msg.flow, msg.lang, dict(msg.metadata))]
        if self.phase in (Phase.OPENING, Phase.LIVE):
            return [error("call_already_started", "call.start was already sent on this socket")]
        return [error("call_ended", f"call '{self.call_id}' is over")]

    def _user_final(self, msg: UserFinal) -> list[Action]:
        if self.turn is not None and self.turn.status is TurnStatus.RUNNING:
            return [error("turn_in_progress", f"turn '{self.turn.turn_id}' is still in progress")]
        self._seq += 1
        self.turn = Turn(self._seq, msg.turn_id)
        return [StartTurn(self._seq, msg.turn_id, msg.text)]

    def _call_end(self) -> list[Action]:
        self.phase = Phase.ENDING
        actions: list[Action] = []
        if self.turn is not None and self.turn.status is TurnStatus.RUNNING:
            actions += self._barge_in(self.turn, "call_end")
        actions.append(EndCall())
        return actions

    def _barge_in(self, turn: Turn, trigger: str) -> list[Action]:
        if turn.status not in (TurnStatus.RUNNING, TurnStatus.DONE):
            return []
        turn.status = TurnStatus.CANCELLED
        turn.speaking = False
        return [
            CancelTurn(turn.seq, turn.turn_id, turn.heard, trigger),
            Send(
                message(EVENT_TURN_CANCELLED, turn_id=turn.turn_id),
                EVENT_TURN_CANCELLED,
                turn_seq=turn.seq,
            ),
        ]

    def _current(self, turn_id: str) -> Turn | None:
        return self.turn if self.turn is not None and self.turn.turn_id == turn_id else None

    def _unknown_turn(self, turn_id: str) -> Send:
        return error("unknown_turn", f"turn '{turn_id}' is not the current turn")

    # Outcomes of dm requests.

    def call_opened(self, node: str, reply: str | None, resumed: bool) -> list[Action]:
        self.phase = Phase.LIVE
        text = message(
            "call.started", call_id=self.call_id, node=node, reply=reply, resumed=resumed
        )
        return [Send(text, "call.started")]

    def call_open_failed(self, code: str, text: str) -> list[Action]:
        if code == "call_not_found":  # another key's call: nothing to retry on this socket
            self.phase = Phase.ENDED
            return [error(code, text), Close(CLOSE_POLICY, "call not found")]
        if self._start_overdue:
            self.phase = Phase.ENDED
            return [error(code, text), Close(CLOSE_POLICY, "no call.start in time")]
        self.phase = Phase.NEW  # the client may send call.start again
        return [error(code, text)]

    def start_timed_out(self, timeout_s: float) -> list[Action]:
        """The deadline for `call.start` after the handshake has passed."""
        if self.phase is Phase.OPENING:
            self._start_overdue = True  # decided when dm answers
            return []
        if self.phase is not Phase.NEW:
            return []
        self.phase = Phase.ENDED
        return [
            error("call_not_started", f"no call.start within {timeout_s:g} s"),
            Close(CLOSE_POLICY, "no call.start in time"),
        ]

    def turn_event(self, seq: int, data: str) -> list[Action]:
        """One event of a turn's dm stream; its data is already the client message."""
        turn = self.turn
        if turn is None or turn.seq != seq or turn.status is not TurnStatus.RUNNING:
            return []  # a turn the caller barged in on says nothing more
        event = orjson.loads(data)
        kind = event.get("type")
        if kind == EVENT_BACKCHANNEL:
            return [Send(data, kind, turn_seq=seq, mark=LatencyMark.BACKCHANNEL)]
        if kind == EVENT_REPLY_DELTA:
            first = not turn.sent
            turn.sent.append(event["text"])
            turn.speaking = True
            return [Send(data, kind, turn_seq=seq, mark=LatencyMark.FIRST_DELTA if first else None)]
        if kind == EVENT_TURN_DONE:
            turn.status = TurnStatus.DONE
            actions: list[Action] = [Send(data, kind, turn_seq=seq)]
            if event.get("done"):
                self.phase = Phase.ENDING
                actions.append(EndCall())
            return actions
        if kind == EVENT_TURN_CANCELLED:
            turn.status = TurnStatus.CANCELLED
            turn.speaking = False
            return [Send(data, kind, turn_seq=seq)]
        if kind == EVENT_ERROR:
            turn.status = TurnStatus.FAILED
            return [Send(data, kind, code=str(event.get("code")), turn_seq=seq)]
        return []

    def turn_failed(self, seq: int, code: str, text: str) -> list[Action]:
        """dm refused the turn or its stream broke before the turn ended."""
        turn = self.turn
        if turn is None or turn.seq != seq or turn.status is not TurnStatus.RUNNING:
            return []
        turn.status = TurnStatus.FAILED
        return [Send(message(EVENT_ERROR, code=code, message=text), EVENT_ERROR, code, seq)]

    def call_ended(self, summary: dict[str, Any]) -> list[Action]:
        self.phase = Phase.ENDED
        actions: list[Action] = []
        if summary.get("outcome") == "transfer":
            reason = summary.get("transfer_reason")
            reason = reason if isinstance(reason, str) else None
            label = reason if reason and TRANSFER_REASON.fullmatch(reason) else "other"
            text = message(EVENT_CALL_TRANSFER, reason=reason)
            actions.append(Send(text, EVENT_CALL_TRANSFER, code=label))
        return [
            *actions,
            Send(message("call.ended", summary=summary), "call.ended"),
            Close(CLOSE_NORMAL, "call ended"),
        ]

    def call_end_failed(self, code: str, text: str) -> list[Action]:
        self.phase = Phase.LIVE  # ending is idempotent in dm: the client may try again
        return [error(code, text)]
