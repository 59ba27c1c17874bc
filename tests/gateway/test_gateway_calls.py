"""Whole calls over the WebSocket: gateway → dm → Redis, with a scripted LLM."""

from __future__ import annotations

from typing import Any

import httpx
from gateway_harness import assert_turn_shape, llm_says

from support.stack import DmStack


def booking(name: Any = None, phone: Any = None, exam: Any = None) -> dict[str, Any]:
    return {"name": name, "phone": phone, "exam": exam}


async def test_booking_call_in_russian(stack: DmStack, gateway: str, open_call: Any) -> None:
    async with open_call("booking-ru-1") as call:
        started = await call.start("booking_mri", "ru")
        assert started == {
            "type": "call.started",
            "call_id": "booking-ru-1",
            "node": "ask_name",
            "reply": started["reply"],
            "resumed": False,
        }
        assert "МедСкан" in started["reply"]

        script = [
            ("Меня зовут Мария", {"slots": booking(name="Мария"), "next_node": "ask_phone"}),
            (
                "Восемь девятьсот шестнадцать, 123-45-67",
                {"slots": booking(phone="89161234567"), "next_node": "ask_exam"},
            ),
            ("МРТ колена", {"slots": booking(exam="mri_knee"), "next_node": "ask_date"}),
            (
                "Завтра",
                {"slots": {"date": "завтра", "name": None, "exam": None}, "next_node": "ask_time"},
            ),
            (
                "В три часа дня",
                {"slots": {"time": "15:00", "name": None, "exam": None}, "next_node": "confirm"},
            ),
            (
                "Да, всё верно",
                {"slots": {"confirmed": True, "name": None, "phone": None}, "next_node": "done"},
            ),
        ]
        nodes = []
        for index, (text, llm_reply) in enumerate(script, start=1):
            llm_says(stack, **llm_reply)
            messages = await call.turn(f"t{index}", text)
            done = assert_turn_shape(messages, f"t{index}")
            assert done["fallback"] is False
            nodes.append(done["next_node"])
        assert nodes == ["ask_phone", "ask_exam", "ask_date", "ask_time", "confirm", "done"]
        assert done["done"] is True
        assert done["slots"]["name"] == "Мария"
        assert done["slots"]["exam"] == "mri_knee"

        ended = await call.recv()
        assert ended["type"] == "call.ended"
        assert ended["summary"]["ended"] is True
        assert ended["summary"]["slots"]["confirmed"] is True
        assert await call.closed() == (1000, "call ended")

    async with httpx.AsyncClient(base_url=gateway) as client:
        state = (await client.get("/v1/calls/booking-ru-1")).json()
    assert state["ended"] is True
    assert state["turns"] == 6


async def test_interview_in_english_ends_with_scores(
    stack: DmStack, gateway: str, open_call: Any
) -> None:
    answers = [
        ("Call me Alex.", {"slots": {"candidate_name": "Alex"}, "next_node": "q_experience"}),
        (
            "Six years, mostly backend services.",
            {
                "slots": {"years_python": 6},
                "score": 4,
                "red_flags": [],
                "next_node": "q_concurrency",
            },
        ),
        (
            "Asyncio for I/O, processes for CPU.",
            {"score": 5, "red_flags": [], "next_node": "q_testing"},
        ),
        (
            "Pytest, unit and integration.",
            {"score": 4, "red_flags": [], "next_node": "q_code_review"},
        ),
        (
            "Correctness first, then naming.",
            {"score": 3, "red_flags": [], "next_node": "q_conflict"},
        ),
        ("We measured both options.", {"score": 4, "red_flags": [], "next_node": "q_feedback"}),
        ("I ask for specifics and fix it.", {"score": 4, "red_flags": [], "next_node": "wrap_up"}),
        ("No questions, thank you.", {"next_node": "done"}),
    ]
    async with open_call("interview-en-1") as call:
        started = await call.start("interview_python_dev", "en")
        assert started["node"] == "intro"
        assert started["resumed"] is False
        for index, (text, llm_reply) in enumerate(answers, start=1):
            llm_says(stack, reply="Thank you, that is helpful.", **llm_reply)
            done = assert_turn_shape(await call.turn(f"q{index}", text), f"q{index}")
            assert done["next_node"] == llm_reply["next_node"]
        assert done["done"] is True
        ended = await call.recv()
        assert ended["type"] == "call.ended"
        summary = ended["summary"]
        assert summary["ended"] is True
        # The values are dm's judgement; the gateway relays the interview's summary.
        assert set(summary["scores"]) == {"python", "engineering", "teamwork"}
        assert isinstance(summary["red_flags"], list)
        assert await call.closed() == (1000, "call ended")


async def test_a_caller_who_asks_for_a_person_is_handed_over(
    stack: DmStack, gateway: str, open_call: Any
) -> None:
    async with open_call("to-a-person") as call:
        await call.start("booking_mri", "en")
        llm_says(stack, slots=booking(), next_node="ask_name")
        done = (await call.turn("t1", "Can I talk to a human, please?"))[-1]
        assert (done["type"], done["done"], done["outcome"]) == ("turn.done", True, "transfer")
        assert await call.recv() == {"type": "call.transfer", "reason": "caller_asked"}
        ended = await call.recv()
        assert (ended["type"], ended["summary"]["outcome"]) == ("call.ended", "transfer")
        assert await call.closed() == (1000, "call ended")
    async with httpx.AsyncClient(base_url=gateway) as client:
        metrics = (await client.get("/metrics")).text
    assert 'gateway_transfers_total{reason="caller_asked"} 1.0' in metrics
