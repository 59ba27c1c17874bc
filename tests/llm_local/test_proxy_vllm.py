"""LLM_BACKEND=vllm against a scripted vLLM server: the fields vLLM really enforces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from llm_local.settings import DEFAULT_MODELS
from support.llm_upstreams import EngineReply, ScriptedEngine, serve_proxy

SCHEMA = {
    "type": "object",
    "properties": {"next_node": {"enum": ["ask_name", "ask_phone"]}},
    "required": ["next_node"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "Book MRIs."}, {"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine("openai")


@pytest.fixture(scope="module")
def client(engine: ScriptedEngine) -> Iterator[httpx.Client]:
    with serve_proxy("vllm", engine) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def chat(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": MESSAGES, **fields}
    )


def test_readiness_probes_vllm_health(client: httpx.Client, engine: ScriptedEngine) -> None:
    assert client.get("/health").status_code == 200
    assert "/health" in engine.probes


def test_schema_goes_in_response_format_never_guided_json(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "turn", "schema": SCHEMA}}

    response = chat(client, response_format=response_format, max_tokens=96)

    sent = engine.last
    assert sent.path == "/v1/chat/completions"
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }
    assert sent.body["structured_outputs"] == {"disable_any_whitespace": True}
    assert b"guided" not in orjson.dumps(sent.body)
    assert response.json()["choices"][0]["message"]["content"] == EngineReply().content


def test_sampling_is_always_explicit(client: httpx.Client, engine: ScriptedEngine) -> None:
    chat(client)

    body = engine.last.body
    assert body["model"] == DEFAULT_MODELS["vllm"]
    assert body["messages"] == MESSAGES
    assert (body["temperature"], body["top_p"]) == (1.0, 1.0)
    assert body["max_tokens"] == 1024
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "stop" not in body
    assert "seed" not in body


def test_client_sampling_passes_through(client: httpx.Client, engine: ScriptedEngine) -> None:
    chat(client, temperature=0, top_p=0.5, stop=["\n"], seed=3, max_tokens=96)

    body = engine.last.body
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"], body["max_tokens"]) == (
        0.0,
        0.5,
        ["\n"],
        3,
        96,
    )


def test_json_object_maps_to_vllm_json_object(client: httpx.Client, engine: ScriptedEngine) -> None:
    chat(client, response_format={"type": "json_object"})

    assert engine.last.body["response_format"] == {"type": "json_object"}


def test_usage_and_finish_come_from_vllm(client: httpx.Client, engine: ScriptedEngine) -> None:
    engine.push(EngineReply(content="abcdefghij", chunk_chars=2, finish_reason="length"))

    body = chat(client).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


def test_stream_relays_the_engine_chunks(client: httpx.Client) -> None:
    body = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]

    chunks = [orjson.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == EngineReply().content
    assert chunks[-1]["usage"]["prompt_tokens"] == 7
    assert events[-1] == "[DONE]"


def test_completions_go_to_vllm_completions(client: httpx.Client, engine: ScriptedEngine) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    body = client.post(
        "/v1/completions",
        json={"prompt": "Say", "max_tokens": 5, "response_format": response_format},
    ).json()

    assert engine.last.path == "/v1/completions"
    assert engine.last.body["prompt"] == "Say"
    assert engine.last.body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["choices"][0]["text"] == EngineReply().content


def test_embeddings_come_back_in_input_order(client: httpx.Client, engine: ScriptedEngine) -> None:
    body = client.post("/v1/embeddings", json={"input": ["a", "b", "c"]}).json()

    assert engine.last.path == "/v1/embeddings"
    assert [item["embedding"] for item in body["data"]] == [[0.0, 0.5], [1.0, 0.5], [2.0, 0.5]]
    assert body["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize("keyword", ["uniqueItems", "not", "if"])
def test_schema_keywords_vllm_cannot_enforce_are_400(
    client: httpx.Client, engine: ScriptedEngine, keyword: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", keyword: True}},
    }
    sent_before = len(engine.requests)

    response = chat(
        client,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_schema"
    assert keyword in error["message"]
    assert "/properties/tags" in error["message"]
    assert len(engine.requests) == sent_before
