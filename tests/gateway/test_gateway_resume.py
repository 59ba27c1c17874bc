"""Dropped sockets, resumed calls and a second connection taking a call over."""

from __future__ import annotations

import json
from typing import Any

import httpx
from gateway_harness import assert_turn_shape, eventually, llm_says

from support.stack import DmStack
from voicectl.scripted_llm import ScriptedReply

NAME_GIVEN = {"slots": {"name": "Мария", "phone": None, "exam": None}, "next_node": "ask_phone"}
PHONE_GIVEN = {"slots": {"phone": "89161234567", "name": None, "exam": None}}


async def test_resume_after_a_drop_keeps_the_turn_in_flight(
    stack: DmStack, gateway: str, open_call: Any
) -> None:
    async with open_call("resume") as call:
        await call.start("booking_mri", "ru")
        stack.llm.push(ScriptedReply(content=json.dumps(NAME_GIVEN), first_chunk_delay_s=0.3))
        await call.send("user.final", turn_id="t1", text="Мария")
        assert (await call.recv())["type"] == "backchannel"  # t1 is running in dm
        call.ws.transport.abort()  # the line drops, no close handshake

    async with httpx.AsyncClient(base_url=gateway) as client:

        async def stored() -> bool:
            state = (await client.get("/v1/calls/resume")).json()
            return bool(state["turns"] == 1)

        await eventually(stored)  # the turn finished in dm without a socket to stream to
        state = (await client.get("/v1/calls/resume")).json()
    assert state["node"] == "ask_phone"
    assert state["history"][0]["turn_id"] == "t1"

    async with open_call("resume") as call:
        started = await call.start("booking_mri", "ru")
        assert started == {
            "type": "call.started",
            "call_id": "resume",
            "node": "ask_phone",
            "reply": None,
            "resumed": True,
        }
        # The pipeline retries the turn it never heard the end of: dm replays the stored one.
        await call.send("user.final", turn_id="t1", text="Мария")
        replayed = await call.recv_until("turn.done")
        assert replayed[-1]["next_node"] == "ask_phone"
        assert "".join(m["text"] for m in replayed[:-1]) == replayed[-1]["reply"]
        assert len(stack.llm.requests) == 1
        llm_says(stack, **PHONE_GIVEN, next_node="ask_exam")
        done = assert_turn_shape(await call.turn("t2", "89161234567"), "t2")
        assert (done["node_before"], done["next_node"]) == ("ask_phone", "ask_exam")


async def test_a_second_connection_takes_the_call_over(open_call: Any) -> None:
    async with open_call("takeover") as first:
        assert (await first.start("booking_mri", "en"))["resumed"] is False
        async with open_call("takeover") as second:
            # Connecting alone takes nothing over: first is still served.
            await first.send("call.start", flow="booking_mri", lang="en")
            assert (await first.recv())["code"] == "call_already_started"
            started = await second.start("booking_mri", "en")
            assert (started["node"], started["reply"], started["resumed"]) == (
                "ask_name",
                None,
                True,
            )
            assert await first.closed() == (4409, "another connection took over the call")


async def test_resuming_with_another_flow_is_refused(open_call: Any) -> None:
    async with open_call("other-flow") as call:
        await call.start("booking_mri", "en")
    async with open_call("other-flow") as call:
        refused = await call.start("interview_python_dev", "en")
        assert (refused["type"], refused["code"]) == ("error", "call_exists")
        assert (await call.start("booking_mri", "en"))["resumed"] is True
