"""Barge-in: the caller cuts the agent off; the turn stops end to end, state records it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from gateway_harness import CallClient, assert_turn_shape, eventually, llm_says

from support.stack import DmStack
from voicectl.scripted_llm import ScriptedReply

LONG_REPLY = (
    "Nice to meet you, Alex. Before the questions, a few words about the role, the team"
    " you would join, the way we work together and what a usual week looks like here."
)


def push_slow_reply(stack: DmStack) -> None:
    """An intro answer that streams for seconds, a few characters at a time."""
    content = {
        "reply": LONG_REPLY,
        "slots": {"candidate_name": "Alex"},
        "next_node": "q_experience",
    }
    stack.llm.push(ScriptedReply(content=json.dumps(content), chunk_chars=3, chunk_delay_s=0.04))


async def barge_in_on_first_turn(stack: DmStack, call: CallClient, how: dict[str, Any]) -> str:
    """Start a slow turn, barge in once the reply is being spoken; return what was sent."""
    assert (await call.start("interview_python_dev", "en"))["node"] == "intro"
    push_slow_reply(stack)
    await call.send("user.final", turn_id="t1", text="Call me Alex.")
    before = await call.recv_until("reply.delta")
    assert [m["type"] for m in before] == ["backchannel", "reply.delta"]
    await call.send(**how)
    after = await call.recv_until("turn.cancelled")
    assert after[-1] == {"type": "turn.cancelled", "turn_id": "t1"}
    # Pieces already on their way when the barge-in arrived (the turn may even have ended).
    in_flight = after[:-1]
    assert {m["type"] for m in in_flight} <= {"reply.delta", "turn.done"}
    assert all(m["turn_id"] == "t1" for m in in_flight)
    heard = "".join(m["text"] for m in before[1:] + in_flight if m["type"] == "reply.delta")
    assert heard
    return heard


async def assert_cancelled_end_to_end(
    stack: DmStack, gateway: str, call: CallClient, heard: str, *, in_flight: bool = False
) -> None:
    """t1 was barged in on: cancelled in dm if still running (`in_flight`: it must have
    been), else applied with what the caller heard."""
    # The next message on the socket is the next turn's: nothing more came for t1.
    llm_says(stack, reply="Thanks.", slots={"candidate_name": "Alex"}, next_node="q_experience")
    done = assert_turn_shape(await call.turn("t2", "Alex, please."), "t2")
    async with httpx.AsyncClient(base_url=gateway) as client:
        state = (await client.get("/v1/calls/barge-in")).json()
    if in_flight or state["cancelled_turns"]:
        # dm still ran t1: cancelled, not applied, and dm hung up on the LLM for it.
        assert state["cancelled_turns"] == [
            {"turn_id": "t1", "user": "Call me Alex.", "heard": heard}
        ]
        assert [turn["turn_id"] for turn in state["history"]] == ["t2"]
        assert done["node_before"] == "intro"
        await eventually(lambda: stack.llm.disconnects == len(stack.llm.requests) - 1)
    else:
        # dm had finished t1: applied, with where the caller cut in.
        first = state["history"][0]
        assert (first["turn_id"], first["interrupted"]) == ("t1", True)
        assert first["heard"].startswith(heard)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"kind": "interrupt", "turn_id": "t1"}, id="interrupt"),
        pytest.param({"kind": "user.partial", "text": "wait, sorry"}, id="user-partial"),
    ],
)
async def test_barge_in_cancels_the_turn_end_to_end(
    stack: DmStack, gateway: str, open_call: Any, how: dict[str, Any]
) -> None:
    async with open_call("barge-in") as call:
        heard = await barge_in_on_first_turn(stack, call, how)
        await assert_cancelled_end_to_end(stack, gateway, call, heard)


async def test_partials_without_words_or_after_playback_do_not_barge_in(
    stack: DmStack, open_call: Any
) -> None:
    async with open_call("no-barge-in") as call:
        await call.start("interview_python_dev", "en")
        slots = {"candidate_name": "Alex"}
        llm_says(stack, reply="Nice to meet you.", slots=slots, next_node="q_experience")
        assert_turn_shape(await call.turn("t1", "Call me Alex."), "t1")
        await call.send("user.partial", text="... ")  # TTS is speaking t1, but no words
        await call.send("playback.done", turn_id="t1")
        await call.send("user.partial", text="so")  # the agent has finished speaking
        llm_says(stack, reply="Good.", slots=slots, next_node="q_experience")
        # The next message is the next turn's: none of the partials cancelled t1.
        assert_turn_shape(await call.turn("t2", "Alex."), "t2")


async def test_barge_in_after_the_reply_records_what_was_heard(
    stack: DmStack, gateway: str, open_call: Any
) -> None:
    async with open_call("heard-all") as call:
        await call.start("interview_python_dev", "en")
        slots = {"candidate_name": "Alex"}
        llm_says(stack, reply="Nice to meet you, Alex.", slots=slots, next_node="q_experience")
        done = assert_turn_shape(await call.turn("t1", "Call me Alex."), "t1")
        await call.send("user.partial", text="sorry, one thing")  # TTS is still speaking t1
        assert await call.recv() == {"type": "turn.cancelled", "turn_id": "t1"}
        # The gateway starts the next turn only once dm has the barge-in.
        llm_says(stack, reply="Sure.", slots=slots, next_node="q_experience")
        assert_turn_shape(await call.turn("t2", "One thing."), "t2")
    async with httpx.AsyncClient(base_url=gateway) as client:
        state = (await client.get("/v1/calls/heard-all")).json()
    first = state["history"][0]
    assert (first["turn_id"], first["interrupted"]) == ("t1", True)
    assert first["heard"].startswith(done["reply"])  # dm marks where the caller cut in
    assert state["cancelled_turns"] == []


async def test_an_interrupt_right_behind_its_turn_still_cancels_it_in_dm(
    stack: DmStack, gateway: str, open_call: Any
) -> None:
    async with open_call("barge-in") as call:
        await call.start("interview_python_dev", "en")
        push_slow_reply(stack)
        await call.send("user.final", turn_id="t1", text="Call me Alex.")
        await call.send("interrupt", turn_id="t1")
        received = await call.recv_until("turn.cancelled")
        assert received[-1] == {"type": "turn.cancelled", "turn_id": "t1"}
        # dm's backchannel may overtake the interrupt at the gateway; no words of the reply can.
        assert [m["type"] for m in received[:-1]] in ([], ["backchannel"])
        await assert_cancelled_end_to_end(stack, gateway, call, heard="", in_flight=True)
