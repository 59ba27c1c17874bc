"""LLM_BACKEND=llamacpp against a scripted llama.cpp server: its own `json_schema` field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.llm_upstreams import EngineReply, ScriptedEngine, serve_proxy

SCHEMA = {
    "type": "object",
    "properties": {"reply": {"type": "string", "maxLength": 80}},
    "required": ["reply"],
}
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine("openai")


@pytest.fixture(scope="module")
def client(engine: ScriptedEngine) -> Iterator[httpx.Client]:
    with serve_proxy("llamacpp", engine) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def chat(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"messages": MESSAGES, **fields})


def test_readiness_probes_the_server_health(client: httpx.Client, engine: ScriptedEngine) -> None:
    assert client.get("/health").status_code == 200
    assert "/health" in engine.probes


def test_schema_goes_in_llamacpp_json_schema(client: httpx.Client, engine: ScriptedEngine) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}

    response = chat(client, response_format=response_format, temperature=0, max_tokens=96)

    sent = engine.last
    assert sent.path == "/v1/chat/completions"  # the root URL gets its /v1
    assert sent.body["json_schema"] == SCHEMA
    assert "response_format" not in sent.body
    assert (sent.body["temperature"], sent.body["top_p"], sent.body["max_tokens"]) == (0.0, 1.0, 96)
    assert sent.body["model"] == "qwen2.5-7b-instruct"
    assert response.json()["choices"][0]["message"]["content"] == EngineReply().content


def test_json_object_is_any_object_schema(client: httpx.Client, engine: ScriptedEngine) -> None:
    chat(client, response_format={"type": "json_object"})

    assert engine.last.body["json_schema"] == {"type": "object"}


def test_free_text_sends_no_schema(client: httpx.Client, engine: ScriptedEngine) -> None:
    chat(client, stop="END")

    assert "json_schema" not in engine.last.body
    assert engine.last.body["stop"] == ["END"]


def test_completions_carry_json_schema_too(client: httpx.Client, engine: ScriptedEngine) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}

    client.post("/v1/completions", json={"prompt": "Q:", "response_format": response_format})

    assert engine.last.path == "/v1/completions"
    assert engine.last.body["json_schema"] == SCHEMA


@pytest.mark.parametrize("keyword", ["patternProperties", "prefixItems", "uniqueItems", "not"])
def test_keywords_the_grammar_converter_skips_are_400(
    client: httpx.Client, engine: ScriptedEngine, keyword: str
) -> None:
    schema = {"anyOf": [{"type": "object", keyword: {}}, {"type": "null"}]}
    sent_before = len(engine.requests)

    response = chat(
        client,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )

    assert response.status_code == 400
    assert keyword in response.json()["error"]["message"]
    assert len(engine.requests) == sent_before
