"""LLM_BACKEND=ollama against a scripted Ollama: `/api/chat` with `format` and `options`,
its NDJSON stream translated back to OpenAI chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from support.llm_upstreams import EngineReply, ScriptedEngine, serve_proxy

SCHEMA = {
    "type": "object",
    "properties": {"slots": {"type": "object", "properties": {"phone": {"type": "string"}}}},
}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine("ollama")


@pytest.fixture(scope="module")
def client(engine: ScriptedEngine) -> Iterator[httpx.Client]:
    settings = {"llm_model": "qwen2.5:7b-instruct-q4_K_M"}
    with (
        serve_proxy("ollama", engine, **settings) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def chat(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"messages": MESSAGES, **fields})


def test_readiness_probes_the_version(client: httpx.Client, engine: ScriptedEngine) -> None:
    assert client.get("/health").status_code == 200
    assert engine.probes == ["/api/version"]


def test_chat_uses_format_and_options(client: httpx.Client, engine: ScriptedEngine) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}

    response = chat(
        client, response_format=response_format, max_tokens=96, temperature=0, stop=["\n\n"], seed=1
    )

    sent = engine.last
    assert sent.path == "/api/chat"
    assert sent.body == {
        "model": "qwen2.5:7b-instruct-q4_K_M",
        "messages": MESSAGES,
        "stream": True,
        "think": False,
        "options": {
            "num_predict": 96,
            "temperature": 0.0,
            "top_p": 1.0,
            "stop": ["\n\n"],
            "seed": 1,
        },
        "format": SCHEMA,
    }
    assert response.json()["choices"][0]["message"]["content"] == EngineReply().content


def test_json_object_is_an_object_schema_not_format_json(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    chat(client, response_format={"type": "json_object"})

    assert engine.last.body["format"] == {"type": "object"}


def test_free_text_sends_no_format(client: httpx.Client, engine: ScriptedEngine) -> None:
    chat(client)

    assert "format" not in engine.last.body
    assert engine.last.body["options"] == {"num_predict": 1024, "temperature": 1.0, "top_p": 1.0}


def test_done_line_gives_usage_and_finish(client: httpx.Client, engine: ScriptedEngine) -> None:
    engine.push(EngineReply(content="abcdef", chunk_chars=2, finish_reason="length"))

    body = chat(client).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_ndjson_stream_becomes_openai_chunks(client: httpx.Client) -> None:
    body = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]

    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == EngineReply().content
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_completions_use_generate_raw(client: httpx.Client, engine: ScriptedEngine) -> None:
    body = client.post("/v1/completions", json={"prompt": "2+2=", "max_tokens": 4}).json()

    assert engine.last.path == "/api/generate"
    assert engine.last.body["prompt"] == "2+2="
    assert engine.last.body["raw"] is True
    assert engine.last.body["options"]["num_predict"] == 4
    assert body["choices"][0]["text"] == EngineReply().content


def test_embeddings_use_api_embed(client: httpx.Client, engine: ScriptedEngine) -> None:
    body = client.post("/v1/embeddings", json={"input": ["a", "b"]}).json()

    assert engine.last.path == "/api/embed"
    assert engine.last.body == {"model": "qwen2.5:7b-instruct-q4_K_M", "input": ["a", "b"]}
    assert [item["embedding"] for item in body["data"]] == [[0.0, 0.5], [1.0, 0.5]]
    assert body["usage"]["prompt_tokens"] == 3


def test_schema_keywords_ollama_cannot_enforce_are_400(client: httpx.Client) -> None:
    schema = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}

    response = chat(
        client,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )

    assert response.status_code == 400
    assert "uniqueItems" in response.json()["error"]["message"]
