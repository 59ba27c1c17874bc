"""Barge-in: a turn in flight is cancelled end to end; a finished one records what was heard."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from support.stack import DmStack, dm_stack
from voicectl.scripted_llm import ScriptedReply

SLOW_REPLY = json.dumps(
    {
        "reply": "Понятно, спасибо. Интересный опыт работы с Python.",
        "slots": {"candidate_name": "Алекс"},
        "next_node": "q_experience",
    },
    ensure_ascii=False,
)


async def _start_interview(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/calls", json={"flow": "interview_python_dev", "lang": "ru", "call_id": "c1"}
    )
    assert response.status_code == 201


async def _stream_turn(
    client: httpx.AsyncClient, turn_id: str, first_delta: asyncio.Event
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.stream(
        "POST",
        "/v1/calls/c1/turns",
        json={"turn_id": turn_id, "text": "Зовите меня Алекс"},
        headers={"Accept": "text/event-stream"},
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == "reply.delta":
                    first_delta.set()
    return events


async def _barge_in(stack: DmStack, start_url: str, interrupt_url: str) -> None:
    stack.llm.push(ScriptedReply(content=SLOW_REPLY, chunk_chars=3, chunk_delay_s=0.05))
    async with (
        httpx.AsyncClient(base_url=start_url, timeout=10) as client,
        httpx.AsyncClient(base_url=interrupt_url, timeout=10) as other,
    ):
        await _start_interview(client)
        first_delta = asyncio.Event()
        streaming = asyncio.create_task(_stream_turn(client, "t1", first_delta))
        await asyncio.wait_for(first_delta.wait(), 5)
        response = await other.post("/v1/calls/c1/turns/t1/interrupt", json={"heard": "Понятно, "})
        assert response.status_code == 200
        assert response.json() == {"status": "cancelled"}
        events = await asyncio.wait_for(streaming, 5)
        assert events[-1] == {"type": "turn.cancelled", "turn_id": "t1"}
        assert not any(e["type"] == "turn.done" for e in events)
        call = (await client.get("/v1/calls/c1")).json()
        assert call["turns"] == 0
        assert call["state_version"] == 0
        assert call["node"] == "intro"
        assert call["cancelled_turns"] == [
            {"turn_id": "t1", "user": "Зовите меня Алекс", "heard": "Понятно, "}
        ]
        for _ in range(200):
            if stack.llm.disconnects:
                break
            await asyncio.sleep(0.01)
        assert stack.llm.disconnects == 1
        # The turn can be taken again, and the call goes on.
        stack.llm.push(ScriptedReply(content=SLOW_REPLY))
        retry = await client.post(
            "/v1/calls/c1/turns", json={"turn_id": "t1", "text": "Зовите меня Алекс"}
        )
        assert retry.status_code == 200
        assert retry.json()["next_node"] == "q_experience"


async def test_barge_in_cancels_the_turn_and_the_llm(redis_url: str) -> None:
    with dm_stack(redis_url, dm_rules="off", dm_reply_mode="generate") as stack:
        await _barge_in(stack, stack.dm_url, stack.dm_url)


async def test_barge_in_reaches_the_replica_running_the_turn(redis_url: str) -> None:
    with dm_stack(redis_url, replicas=2, dm_rules="off", dm_reply_mode="generate") as stack:
        await _barge_in(stack, stack.dm_urls[0], stack.dm_urls[1])


async def test_barge_in_after_the_turn_records_what_was_heard(redis_url: str) -> None:
    with dm_stack(
        redis_url, dm_prompt_history_turns=1, dm_rules="off", dm_reply_mode="generate"
    ) as stack:
        stack.llm.push(ScriptedReply(content=SLOW_REPLY))
        async with httpx.AsyncClient(base_url=stack.dm_url, timeout=10) as client:
            await _start_interview(client)
            done = await client.post(
                "/v1/calls/c1/turns", json={"turn_id": "t1", "text": "Зовите меня Алекс"}
            )
            reply = done.json()["reply"]
            heard = reply[:20]
            response = await client.post("/v1/calls/c1/turns/t1/interrupt", json={"heard": heard})
            assert response.json() == {"status": "recorded"}
            call = (await client.get("/v1/calls/c1")).json()
            assert call["state_version"] == 1
            entry = call["history"][-1]
            assert entry["interrupted"] is True
            assert entry["agent"] == reply
            assert entry["heard"].startswith(heard)
            # The next prompt tells the LLM what the caller heard.
            stack.llm.push(ScriptedReply(content=SLOW_REPLY))
            await client.post("/v1/calls/c1/turns", json={"turn_id": "t2", "text": "Да"})
            prompt = stack.llm.requests[-1].body["messages"][1]["content"]
            assert f"Agent: {heard} [the caller interrupted here]" in prompt
            unknown = await client.post("/v1/calls/c1/turns/t9/interrupt", json={"heard": ""})
            assert unknown.status_code == 404
            assert unknown.json()["error"]["code"] == "turn_not_found"
