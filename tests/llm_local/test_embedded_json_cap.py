"""Schema-bound answers on the real model never end in cut JSON: whatever stops them
(a small max_tokens, the deadline), the text parses and validates against its schema,
and within max_tokens whenever the schema's cheapest document fits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llm_local.backends.base import (
    Finished,
    GenerationRequest,
    Message,
    SamplingParams,
)
from llm_local.embedded.backend import EmbeddedBackend
from llm_local.embedded.validate import validate
from llm_local.settings import LlmSettings
from support.backends import collect

pytestmark = pytest.mark.model

SYSTEM = (
    "Ты — оператор клиники МРТ. Ответь одним JSON-объектом: reply (короткий ответ "
    "звонящему по-русски), slots (name, phone, date) и next_node."
)
CALLERS = [
    "Здравствуйте, меня зовут Мария Ивановна Петрова-Водкина, телефон 8 916 123 45 67",
    "ммм ээээ ну это самое ааааа как его",
    "Запишите на завтра, пожалуйста, колено болит уже неделю",
    "asdkjh qwe zzzz 123 !!! ??? ###",
    "Позовите живого человека!!! Немедленно!!!",
    "Мой номер плюс семь девятьсот шестнадцать, а зовут меня Анна",
]
# Bounded strings in Russian, as dm asks: the cheapest document is 12 tokens.
REPLY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "maxLength": 80},
        "next_node": {"enum": ["ask_name", "ask_phone", "confirm", "handoff"]},
        "name": {"anyOf": [{"type": "string", "maxLength": 24}, {"type": "null"}]},
    },
    "required": ["reply", "next_node"],
    "additionalProperties": False,
}
# Nested required members, a format and an array: ~30 tokens at the cheapest.
SLOTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "maxLength": 60},
        "slots": {
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"], "maxLength": 24},
                "phone": {"anyOf": [{"type": "string", "maxLength": 16}, {"type": "null"}]},
                "date": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            },
            "required": ["name", "phone", "date"],
            "additionalProperties": False,
        },
        "next_node": {"enum": ["ask_name", "ask_phone", "confirm", "handoff"]},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{2,6}$"}},
    },
    "required": ["reply", "slots", "next_node", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(LlmSettings(llm_n_ctx=4096, llm_n_threads=1, llm_max_sequences=6))
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


async def answer(
    backend: EmbeddedBackend,
    caller: str,
    schema: dict[str, Any],
    max_tokens: int,
    deadline: float | None = None,
) -> tuple[str, Finished]:
    request = GenerationRequest(
        request_id=f"test-{time.monotonic_ns()}",
        params=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        messages=(Message("system", SYSTEM), Message("user", caller)),
        json_schema=schema,
        deadline=deadline,
    )
    deltas, finished = await collect(backend, request)
    return "".join(deltas), finished


def problem(text: str, schema: dict[str, Any]) -> str | None:
    try:
        return validate(json.loads(text), schema)
    except ValueError as exc:
        return f"not JSON: {exc}: {text!r}"


@pytest.mark.parametrize("max_tokens", [12, 14, 17, 20, 25, 30, 40])
async def test_answers_cut_by_max_tokens_close_within_it(
    backend: EmbeddedBackend, max_tokens: int
) -> None:
    results = await asyncio.gather(*(answer(backend, c, REPLY, max_tokens) for c in CALLERS))

    for text, finished in results:
        assert problem(text, REPLY) is None, text
        assert finished.completion_tokens <= max_tokens
    assert any(f.finish_reason == "length" for _, f in results)
    assert backend.stats().extra["schema_violations"] == 0


@pytest.mark.parametrize("max_tokens", [1, 8, 24, 34, 40, 64])
async def test_nested_required_members_are_filled_when_the_cap_cuts_them(
    backend: EmbeddedBackend, max_tokens: int
) -> None:
    results = await asyncio.gather(*(answer(backend, c, SLOTS, max_tokens) for c in CALLERS))

    for text, finished in results:
        assert problem(text, SLOTS) is None, text
        # Below the cheapest document the cap cannot hold; the answer is that document.
        assert finished.completion_tokens <= max(max_tokens, 34)


async def test_any_object_closes_at_one_token(backend: EmbeddedBackend) -> None:
    text, finished = await answer(backend, CALLERS[0], {"type": "object"}, max_tokens=1)

    assert json.loads(text) == {}
    assert (finished.finish_reason, finished.completion_tokens) == ("length", 1)


async def test_an_answer_cut_by_the_deadline_closes_too(backend: EmbeddedBackend) -> None:
    text, finished = await answer(
        backend, CALLERS[0], SLOTS, max_tokens=500, deadline=time.monotonic() + 0.6
    )

    assert finished.stop_cause == "deadline"
    assert problem(text, SLOTS) is None, text
