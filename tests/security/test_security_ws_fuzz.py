"""A WebSocket frame fuzzer against the gateway process (in front of dm, Redis, llm-local).

Each generated session opens a call socket and sends a few frames, in any order: valid
messages with odd values, known types with fields of the wrong type, any JSON, broken
JSON, deep nesting, binary frames, control and invisible characters, frames past
64 KiB. Then a probe (`interrupt` of a turn that does not exist) must be answered, or
the socket must have been closed with one of the contract's codes. Every message the
server sends must be one of the contract's, and no socket may end in 1011 or without a
close frame. `SECURITY_WS_SESSIONS` sets the number of sessions.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from security_harness import Keys, Stack, audited_stack
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

SESSIONS = int(os.environ.get("SECURITY_WS_SESSIONS", "60"))
KEYS = Keys(gateway="gw-" + secrets.token_hex(8), dm="dm-" + secrets.token_hex(8))
ANSWER_TIMEOUT_S = 10.0
QUIET_S = 0.1  # no message for this long: the answers so far are in, dm's included
SERVER_TYPES = {
    "call.started",
    "backchannel",
    "reply.delta",
    "turn.done",
    "turn.cancelled",
    "call.transfer",
    "call.ended",
    "error",
}
# 1000 after call.ended (or idle), 1008 policy, 1009 frame too big, 4409 taken over.
CONTRACT_CLOSES = {1000, 1008, 1009, 4409}
CLIENT_TYPES = [
    "call.start",
    "user.partial",
    "user.final",
    "interrupt",
    "playback.done",
    "call.end",
]

texts = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "No", "Nd"]), max_size=40),
    st.sampled_from(["", " ", "\x00", "\u200b\u200b", "²①₂", "８９１６", "\ufeff", "a" * 2001]),
)
identifiers = st.one_of(st.sampled_from(["t1", "t2", "t3"]), st.text(max_size=70))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
valid_fields = {
    "call.start": st.fixed_dictionaries(
        {
            "flow": st.sampled_from(["booking_mri", "interview_python_dev", "nope"]) | identifiers,
            "lang": st.sampled_from(["ru", "en", "xx"]) | texts,
        },
        optional={"metadata": st.dictionaries(st.text(max_size=70), json_values, max_size=40)},
    ),
    "user.partial": st.fixed_dictionaries({"text": texts}),
    "user.final": st.fixed_dictionaries({"turn_id": identifiers, "text": texts}),
    "interrupt": st.fixed_dictionaries({"turn_id": identifiers}),
    "playback.done": st.fixed_dictionaries({"turn_id": identifiers}),
    "call.end": st.fixed_dictionaries({}, optional={"reason": texts | json_values}),
}


def message(kind: str, fields: dict[str, Any]) -> str:
    return json.dumps({"type": kind, **fields}, ensure_ascii=False)


common_frames = st.one_of(
    # Valid shapes, odd values.
    st.sampled_from(CLIENT_TYPES).flatmap(lambda k: valid_fields[k].map(lambda f: message(k, f))),
    # Known types, any fields of any type.
    st.builds(
        message,
        st.sampled_from(CLIENT_TYPES) | json_values,
        st.dictionaries(
            st.sampled_from(["text", "turn_id", "flow", "lang", "metadata", "x"]), json_values
        ),
    ),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    st.text(max_size=60),  # mostly not JSON at all
    st.binary(max_size=40),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 3000).map(
        lambda depth: (
            '{"type": "call.start", "metadata": ' + '{"a": ' * depth + "1" + "}" * (depth + 1)
        )
    ),
)
# Over 64 KiB: the socket closes with 1009, so these end a session; keep them rare.
oversize = st.sampled_from([64 * 1024 + 1, 200_000]).map(
    lambda n: message("user.partial", {"text": "x" * n})
)
frames = st.integers(0, 19).flatmap(lambda n: oversize if n == 0 else common_frames)
# Most sessions open a real call first (and wait for it), some then start a turn, so the
# frames after them meet a live call and a turn in flight, not only a socket waiting for
# call.start.
START = message("call.start", {"flow": "booking_mri", "lang": "en"})
TURN = message("user.final", {"turn_id": "t1", "text": "my name is Maria"})
openings = st.sampled_from(["none", "call", "turn"])
sessions = st.tuples(openings, st.lists(frames, min_size=1, max_size=8))


@dataclass
class Campaign:
    sessions: int = 0
    frames: int = 0
    closes: dict[int | None, int] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("ws-fuzz")
    with audited_stack(redis_server.url, log_dir, KEYS) as running:
        yield running


def check_message(raw: str | bytes, campaign: Campaign) -> dict[str, Any]:
    message = orjson.loads(raw)
    kind = message.get("type") if isinstance(message, dict) else None
    campaign.received[str(kind)] += 1
    if kind not in SERVER_TYPES:
        campaign.problems.append(f"not a contract message: {raw[:200]!r}")
    elif kind == "error" and not (
        isinstance(message.get("code"), str) and isinstance(message.get("message"), str)
    ):
        campaign.problems.append(f"malformed error: {raw[:200]!r}")
    elif kind == "error" and message["code"] in ("internal_error", "dm_error"):
        campaign.problems.append(f"a server error behind the socket: {raw[:200]!r}")
    return message if isinstance(message, dict) else {}


def drain(ws: ClientConnection, campaign: Campaign, quiet_s: float) -> list[dict[str, Any]]:
    """Messages until none comes for `quiet_s`."""
    received = []
    while True:
        try:
            raw = ws.recv(timeout=quiet_s)
        except TimeoutError:
            return received
        received.append(check_message(raw, campaign))


def wait_for(ws: ClientConnection, campaign: Campaign, *kinds: str) -> None:
    while check_message(ws.recv(timeout=ANSWER_TIMEOUT_S), campaign).get("type") not in kinds:
        continue


def is_probe_answer(message: dict[str, Any], probe: str) -> bool:
    if message.get("type") != "error":
        return False
    code = message.get("code")
    return code in ("call_not_started", "call_ended") or (
        code == "unknown_turn" and probe in str(message.get("message"))
    )


def run_session(
    url: str, call_id: str, opening: str, frames: list[str | bytes], campaign: Campaign
) -> None:
    headers = {"Authorization": f"Bearer {KEYS.gateway}"}
    with connect(
        url + f"/v1/calls/{call_id}/ws",
        additional_headers=headers,
        compression=None,
        max_size=None,
        open_timeout=ANSWER_TIMEOUT_S,
    ) as ws:
        try:
            if opening != "none":
                ws.send(START)
                wait_for(ws, campaign, "call.started", "error")
            if opening == "turn":
                ws.send(TURN)
            for frame in frames:
                ws.send(frame)
                campaign.frames += 1
            drain(ws, campaign, QUIET_S)
            probe = f"probe-{call_id}"
            ws.send(orjson.dumps({"type": "interrupt", "turn_id": probe}).decode())
            for raw in iter(lambda: ws.recv(timeout=ANSWER_TIMEOUT_S), None):
                if is_probe_answer(check_message(raw, campaign), probe):
                    campaign.closes[None] = campaign.closes.get(None, 0) + 1
                    return
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            campaign.closes[code] = campaign.closes.get(code, 0) + 1
            if code not in CONTRACT_CLOSES:
                campaign.problems.append(f"closed with {code} after {frames!r}"[:500])
        except TimeoutError:
            campaign.problems.append(f"no answer to the probe after {frames!r}"[:500])


def test_no_frame_crashes_a_socket(stack: Stack) -> None:
    url = stack.gateway_url.replace("http://", "ws://")
    campaign = Campaign()
    numbers = itertools.count()

    @given(session=sessions)
    @settings(
        max_examples=SESSIONS,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(session: tuple[str, list[str | bytes]]) -> None:
        campaign.sessions += 1
        run_session(url, f"fuzz-{next(numbers)}", *session, campaign)

    fuzz()
    print(
        f"{campaign.sessions} sessions, {campaign.frames} frames, ends (None: still answering):"
        f" {dict(sorted(campaign.closes.items(), key=str))}; received {dict(campaign.received)}"
    )
    assert campaign.problems == []
    assert campaign.sessions >= SESSIONS
    # The sessions reached live calls and both ends: sockets still answering, and
    # sockets closed by rule.
    assert campaign.received["call.started"] > 0
    assert campaign.closes.get(None, 0) > 0
    assert campaign.closes.get(1009, 0) > 0
    gateway_log = next(s for s in stack.services if s.name == "gateway").output()
    assert "socket_failed" not in gateway_log
    assert "Exception in ASGI application" not in gateway_log
