"""The protocol core on its own: client frames and dm events in, actions out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.protocol import (
    Action,
    CallSession,
    CancelTurn,
    Close,
    EndCall,
    ForwardPartial,
    LatencyMark,
    OpenCall,
    Send,
    StartTurn,
)


def frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def sent(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.text) for a in actions if isinstance(a, Send)]


def error_code(actions: list[Action]) -> str:
    [message] = sent(actions)
    assert message["type"] == "error"
    return str(message["code"])


def live_session() -> CallSession:
    session = CallSession("c1")
    assert session.receive(frame("call.start", flow="booking_mri", lang="ru")) == [
        OpenCall("booking_mri", "ru", {})
    ]
    session.call_opened("ask_name", "Здравствуйте!", resumed=False)
    return session


def event(kind: str, turn_id: str = "t1", **fields: Any) -> str:
    return json.dumps({"type": kind, "turn_id": turn_id, **fields})


def start_turn(session: CallSession, turn_id: str = "t1") -> int:
    [start] = session.receive(frame("user.final", turn_id=turn_id, text="Мария"))
    assert isinstance(start, StartTurn)
    return start.seq


def speak(session: CallSession, seq: int, *pieces: str) -> None:
    for piece in pieces:
        session.turn_event(seq, event("reply.delta", text=piece))


def test_call_start_opens_the_call_once() -> None:
    session = CallSession("c1")
    assert error_code(session.receive(frame("user.final", turn_id="t1", text="a"))) == (
        "call_not_started"
    )
    [open_call] = session.receive(
        frame("call.start", flow="booking_mri", lang="ru", metadata={"from": "sip"})
    )
    assert open_call == OpenCall("booking_mri", "ru", {"from": "sip"})
    assert error_code(session.receive(frame("interrupt", turn_id="t1"))) == "call_not_started"
    assert error_code(session.receive(frame("call.start", flow="booking_mri", lang="ru"))) == (
        "call_already_started"
    )
    assert sent(session.call_opened("ask_name", None, resumed=True)) == [
        {
            "type": "call.started",
            "call_id": "c1",
            "node": "ask_name",
            "reply": None,
            "resumed": True,
        }
    ]


def test_partials_go_to_dm_only_on_a_live_call() -> None:
    session = CallSession("c1")
    assert error_code(session.receive(frame("user.partial", text="алло"))) == "call_not_started"
    session.receive(frame("call.start", flow="booking_mri", lang="ru"))
    session.call_opened("ask_name", "Здравствуйте!", resumed=False)
    assert session.receive(frame("user.partial", text="меня зовут")) == [
        ForwardPartial("меня зовут")
    ]
    session.receive(frame("call.end"))
    assert error_code(session.receive(frame("user.partial", text="ещё"))) == "call_ended"


def test_another_keys_call_closes_the_socket() -> None:
    session = CallSession("c1")
    session.receive(frame("call.start", flow="booking_mri", lang="ru"))
    actions = session.call_open_failed("call_not_found", "no call 'c1'")
    assert sent(actions) == [{"type": "error", "code": "call_not_found", "message": "no call 'c1'"}]
    assert actions[-1] == Close(1008, "call not found")
    assert error_code(session.receive(frame("call.start", flow="booking_mri", lang="ru"))) == (
        "call_ended"
    )


def test_no_call_start_in_time_closes_with_1008() -> None:
    session = CallSession("c1")
    actions = session.start_timed_out(10.0)
    assert error_code(actions[:1]) == "call_not_started"
    assert actions[-1] == Close(1008, "no call.start in time")
    assert live_session().start_timed_out(10.0) == []


def test_a_call_start_overdue_in_dm_closes_if_dm_refuses() -> None:
    opening = CallSession("c1")
    opening.receive(frame("call.start", flow="booking_mri", lang="ru"))
    assert opening.start_timed_out(10.0) == []  # dm has it: its answer decides
    assert opening.call_open_failed("dm_unavailable", "down")[-1] == Close(
        1008, "no call.start in time"
    )
    opened = CallSession("c2")
    opened.receive(frame("call.start", flow="booking_mri", lang="ru"))
    opened.start_timed_out(10.0)
    assert sent(opened.call_opened("ask_name", "Hi", resumed=False))[0]["type"] == "call.started"


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"a": {"b": 1}}, id="nested"),
        pytest.param({"deep": json.loads("[" * 300 + "]" * 300)}, id="deep"),
        pytest.param({f"k{n}": n for n in range(40)}, id="too-many-keys"),
    ],
)
def test_call_start_metadata_is_small_and_flat(metadata: dict[str, Any]) -> None:
    raw = frame("call.start", flow="booking_mri", lang="ru", metadata=metadata)
    assert error_code(CallSession("c1").receive(raw)) == "invalid_field"


def test_a_transfer_is_announced_before_the_call_ends() -> None:
    session = live_session()
    seq = start_turn(session)
    assert session.turn_event(seq, event("turn.done", done=True, outcome="transfer"))[-1] == (
        EndCall()
    )
    summary = {"ended": True, "outcome": "transfer", "transfer_reason": "caller_asked"}
    actions = session.call_ended(summary)
    assert sent(actions) == [
        {"type": "call.transfer", "reason": "caller_asked"},
        {"type": "call.ended", "summary": summary},
    ]
    transfer = actions[0]
    assert isinstance(transfer, Send)
    assert (transfer.kind, transfer.code) == ("call.transfer", "caller_asked")
    assert actions[-1] == Close(1000, "call ended")


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (None, "other"),
        ("Weird Reason!", "other"),
        (42, "other"),
        ("not_understood", "not_understood"),
    ],
)
def test_a_transfer_reason_is_a_bounded_metric_label(reason: Any, label: str) -> None:
    actions = live_session().call_ended({"outcome": "transfer", "transfer_reason": reason})
    transfer = actions[0]
    assert isinstance(transfer, Send)
    assert transfer.code == label
    assert json.loads(transfer.text)["reason"] == (reason if isinstance(reason, str) else None)


def test_a_completed_call_ends_without_a_transfer() -> None:
    kinds = [
        a.kind for a in live_session().call_ended({"outcome": "completed"}) if isinstance(a, Send)
    ]
    assert kinds == ["call.ended"]


def test_a_failed_call_start_may_be_retried() -> None:
    session = CallSession("c1")
    session.receive(frame("call.start", flow="booking_mri", lang="ru"))
    assert sent(session.call_open_failed("dm_unavailable", "down")) == [
        {"type": "error", "code": "dm_unavailable", "message": "down"}
    ]
    assert session.receive(frame("call.start", flow="booking_mri", lang="ru")) == [
        OpenCall("booking_mri", "ru", {})
    ]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x00", "unsupported_frame"),
        ("nope", "malformed"),
        ('"text"', "malformed"),
        ('{"type": 3}', "unknown_type"),
        ('{"type": "user.final", "turn_id": "t1", "text": "   "}', "invalid_field"),
        ('{"type": "user.final", "turn_id": "' + "x" * 65 + '", "text": "a"}', "invalid_field"),
        ('{"type": "user.final", "turn_id": "t1", "text": "' + "a" * 2001 + '"}', "invalid_field"),
        ('{"type": "call.start", "flow": "booking_mri", "lang": "RUS"}', "invalid_field"),
        ('{"type": "call.end", "reason": 5}', "invalid_field"),
        ('{"type": "playback.done"}', "invalid_field"),
    ],
)
def test_bad_frames_are_answered_with_an_error(raw: str | bytes, code: str) -> None:
    assert error_code(live_session().receive(raw)) == code


def test_an_error_names_the_field_not_the_callers_words() -> None:
    session = live_session()
    [message] = sent(session.receive(frame("user.final", turn_id="bad id", text="Мария Иванова")))
    assert "turn_id" in message["message"]
    assert "Мария" not in message["message"]


def test_a_turn_relays_dm_events_with_latency_marks() -> None:
    session = live_session()
    seq = start_turn(session)
    [backchannel] = session.turn_event(seq, event("backchannel", text="Угу."))
    assert isinstance(backchannel, Send)
    assert backchannel.mark is LatencyMark.BACKCHANNEL
    first = session.turn_event(seq, event("reply.delta", text="Спасибо. "))
    second = session.turn_event(seq, event("reply.delta", text="Ваш телефон?"))
    assert [a.mark for a in first + second if isinstance(a, Send)] == [
        LatencyMark.FIRST_DELTA,
        None,
    ]
    done = event("turn.done", reply="Спасибо. Ваш телефон?", done=False)
    assert session.turn_event(seq, done) == [Send(done, "turn.done", turn_seq=seq)]


def test_one_turn_at_a_time() -> None:
    session = live_session()
    seq = start_turn(session)
    assert error_code(session.receive(frame("user.final", turn_id="t2", text="a"))) == (
        "turn_in_progress"
    )
    session.turn_event(seq, event("turn.done", done=False))
    assert start_turn(session, "t2") == seq + 1


def test_a_final_turn_ends_the_call_and_closes() -> None:
    session = live_session()
    seq = start_turn(session)
    actions = session.turn_event(seq, event("turn.done", done=True))
    assert actions[1:] == [EndCall()]
    assert error_code(session.receive(frame("user.final", turn_id="t2", text="a"))) == "call_ended"
    ended = session.call_ended({"ended": True})
    assert sent(ended) == [{"type": "call.ended", "summary": {"ended": True}}]
    assert ended[-1] == Close(1000, "call ended")


def test_interrupt_cancels_with_what_was_sent() -> None:
    session = live_session()
    seq = start_turn(session)
    speak(session, seq, "Спасибо, ", "Мария. ")
    actions = session.receive(frame("interrupt", turn_id="t1"))
    assert actions[0] == CancelTurn(seq, "t1", "Спасибо, Мария. ", "interrupt")
    assert sent(actions) == [{"type": "turn.cancelled", "turn_id": "t1"}]
    # Nothing more for the cancelled turn, whatever dm still sends; a repeat is ignored.
    assert session.turn_event(seq, event("reply.delta", text="Назовите")) == []
    assert session.turn_event(seq, event("turn.cancelled")) == []
    assert session.receive(frame("interrupt", turn_id="t1")) == []
    assert start_turn(session, "t2") == seq + 1


def test_interrupt_before_any_reply_hears_nothing() -> None:
    session = live_session()
    seq = start_turn(session)
    assert session.receive(frame("interrupt", turn_id="t1"))[0] == CancelTurn(
        seq, "t1", "", "interrupt"
    )


def test_interrupt_of_another_turn_is_an_error() -> None:
    session = live_session()
    start_turn(session)
    assert error_code(session.receive(frame("interrupt", turn_id="t9"))) == "unknown_turn"
    assert error_code(session.receive(frame("playback.done", turn_id="t9"))) == "unknown_turn"


def test_partial_with_words_barges_in_only_while_the_agent_speaks() -> None:
    session = live_session()
    seq = start_turn(session)
    # No reply piece yet: no barge-in, but dm hears what the caller says.
    assert session.receive(frame("user.partial", text="алло")) == [ForwardPartial("алло")]
    speak(session, seq, "Спасибо. ")
    assert session.receive(frame("user.partial", text=" ... ")) == []  # no words
    actions = session.receive(frame("user.partial", text="подождите"))
    assert actions[0] == CancelTurn(seq, "t1", "Спасибо. ", "partial")
    assert actions[-1] == ForwardPartial("подождите")


def test_partial_after_the_reply_barges_in_until_playback_is_done() -> None:
    session = live_session()
    seq = start_turn(session)
    speak(session, seq, "Спасибо. ")
    session.turn_event(seq, event("turn.done", done=False))
    actions = session.receive(frame("user.partial", text="стоп"))
    assert actions[0] == CancelTurn(seq, "t1", "Спасибо. ", "partial")

    seq = start_turn(session, "t2")
    speak(session, seq, "Хорошо. ")
    session.turn_event(seq, event("turn.done", done=False, turn_id="t2"))
    assert session.receive(frame("playback.done", turn_id="t2")) == []
    assert session.receive(frame("user.partial", text="да")) == [ForwardPartial("да")]


def test_a_new_turn_ends_the_previous_ones_speech() -> None:
    session = live_session()
    seq = start_turn(session)
    speak(session, seq, "Спасибо. ")
    session.turn_event(seq, event("turn.done", done=False))
    start_turn(session, "t2")
    assert session.receive(frame("user.partial", text="да")) == [ForwardPartial("да")]


def test_call_end_cancels_the_running_turn_first() -> None:
    session = live_session()
    seq = start_turn(session)
    actions = session.receive(frame("call.end", reason="hangup"))
    assert actions[0] == CancelTurn(seq, "t1", "", "call_end")
    assert sent(actions) == [{"type": "turn.cancelled", "turn_id": "t1"}]
    assert actions[-1] == EndCall()


def test_a_failed_call_end_may_be_retried() -> None:
    session = live_session()
    session.receive(frame("call.end"))
    assert error_code(session.call_end_failed("dm_unavailable", "down")) == "dm_unavailable"
    assert session.receive(frame("call.end")) == [EndCall()]


def test_a_refused_or_broken_turn_is_an_error_once() -> None:
    session = live_session()
    seq = start_turn(session)
    assert error_code(session.turn_failed(seq, "turn_in_progress", "busy")) == "turn_in_progress"
    assert session.turn_failed(seq, "dm_unavailable", "down") == []
    seq = start_turn(session, "t2")
    failed = session.turn_event(seq, json.dumps({"type": "error", "code": "turn_failed"}))
    assert [a.code for a in failed if isinstance(a, Send)] == ["turn_failed"]
    assert session.turn_failed(seq, "dm_unavailable", "ended early") == []


def test_events_of_a_replaced_turn_with_the_same_id_are_dropped() -> None:
    session = live_session()
    old = start_turn(session)
    session.receive(frame("interrupt", turn_id="t1"))
    new = start_turn(session)  # the pipeline retries the same turn_id
    assert session.turn_event(old, event("reply.delta", text="старое")) == []
    assert session.turn_event(new, event("reply.delta", text="новое")) != []
