"""Cheap constrained sampling (grammar on the top-k candidates, full vocabulary as the
fallback) picks exactly what full-vocabulary grammar sampling picks, greedily."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from llm_local.backends.base import (
    Finished,
    GenerationRequest,
    Message,
    SamplingParams,
    TextDelta,
)
from llm_local.embedded.backend import EmbeddedBackend
from llm_local.embedded.validate import validate
from llm_local.settings import LlmSettings

pytestmark = pytest.mark.model

SYSTEM = "You extract booking details from what a caller says and answer in JSON only."
SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "name": {"anyOf": [{"type": "string", "maxLength": 16}, {"type": "null"}]},
            "next_node": {"enum": ["ask_phone", "confirm", "goodbye"]},
        },
        "required": ["name", "next_node"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "date": {"type": "string", "format": "date"},
            "count": {"type": "integer"},
            "ok": {"type": "boolean"},
        },
        "required": ["date", "count", "ok"],
    },
    {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3},
]
CALLERS = ["I am Olga, book me for the 3rd of May, two people.", "No thanks, goodbye."]


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[EmbeddedBackend, EmbeddedBackend]]:
    settings = LlmSettings(llm_n_ctx=1024, llm_n_threads=1, llm_max_sequences=2)
    shortcut = EmbeddedBackend(settings.model_copy(update={"llm_grammar_top_k": 40}))
    full = EmbeddedBackend(settings.model_copy(update={"llm_grammar_top_k": 0}))
    asyncio.run(shortcut.start())
    asyncio.run(full.start())
    yield shortcut, full
    asyncio.run(shortcut.close())
    asyncio.run(full.close())


async def generate(backend: EmbeddedBackend, caller: str, schema: dict[str, Any]) -> str:
    request = GenerationRequest(
        request_id="sampling",
        params=SamplingParams(max_tokens=40, temperature=0.0),
        messages=(Message("system", SYSTEM), Message("user", caller)),
        json_schema=schema,
    )
    text = ""
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            assert isinstance(event, Finished)
            if event.finish_reason == "stop":
                assert validate(json.loads(text), schema) is None
    return text


@pytest.mark.parametrize("schema", SCHEMAS, ids=["turn", "typed", "array"])
async def test_greedy_output_is_identical_with_and_without_the_top_k_shortcut(
    backends: tuple[EmbeddedBackend, EmbeddedBackend], schema: dict[str, Any]
) -> None:
    shortcut, full = backends
    for caller in CALLERS:
        assert await generate(shortcut, caller, schema) == await generate(full, caller, schema)
