"""Every proxy backend against a failing scripted engine: upstream errors mapped to OpenAI
statuses with the engine's message, stalls bounded by the deadline, a whitespace runaway
cut, and our client's disconnect reaching the engine."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from llm_local.app import create_app
from support.llm_upstreams import (
    EngineReply,
    ScriptedEngine,
    local_settings,
    metric_value,
    serve_proxy,
)
from support.servers import ServerThread

BACKENDS = ["vllm", "llamacpp", "ollama", "openai"]
BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
JSON_OBJECT = {"type": "json_object"}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def engine(backend: str) -> ScriptedEngine:
    return ScriptedEngine("ollama" if backend == "ollama" else "openai")


@pytest.fixture(scope="module")
def base_url(backend: str, engine: ScriptedEngine) -> Iterator[str]:
    with serve_proxy(backend, engine) as url:
        yield url


@pytest.fixture
def client(base_url: str, engine: ScriptedEngine) -> Iterator[httpx.Client]:
    engine.replies.clear()
    engine.hung_up.clear()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def post(client: httpx.Client, timeout_ms: int | None = None, **fields: Any) -> httpx.Response:
    headers = {"X-Request-Timeout-Ms": str(timeout_ms)} if timeout_ms else {}
    return client.post("/v1/chat/completions", json={**BODY, **fields}, headers=headers)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("stream", [False, True])
def test_engine_500_is_502_with_its_message(
    client: httpx.Client, engine: ScriptedEngine, stream: bool
) -> None:
    engine.push(EngineReply(status=500, message="CUDA out of memory"))

    error = error_of(post(client, stream=stream), 502)

    assert error["code"] == "upstream_error"
    assert error["type"] == "server_error"
    assert "CUDA out of memory" in error["message"]


def test_engine_400_is_the_clients_400(client: httpx.Client, engine: ScriptedEngine) -> None:
    engine.push(EngineReply(status=400, message="maximum context length is 2048 tokens"))

    error = error_of(post(client), 400)

    assert error["code"] == "upstream_rejected"
    assert "maximum context length" in error["message"]


def test_engine_429_keeps_its_retry_after(client: httpx.Client, engine: ScriptedEngine) -> None:
    engine.push(EngineReply(status=429, message="too many requests", retry_after="7"))

    response = post(client)

    assert error_of(response, 429)["code"] == "overloaded"
    assert response.headers["retry-after"] == "7"


def test_engine_503_is_503(client: httpx.Client, engine: ScriptedEngine) -> None:
    engine.push(EngineReply(status=503, message="loading model"))

    response = post(client)

    assert "loading model" in error_of(response, 503)["message"]
    assert "retry-after" in response.headers


def test_engine_that_never_answers_fails_at_the_deadline(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    engine.push(EngineReply(stall_s=1.5))

    started = time.monotonic()
    response = post(client, timeout_ms=200)

    assert time.monotonic() - started < 1.2
    assert error_of(response, 503)["code"] == "deadline_exceeded"
    assert "retry-after" in response.headers


@pytest.mark.parametrize("stream", [False, True])
def test_engine_stalling_mid_stream_is_cut_at_the_deadline(
    client: httpx.Client, engine: ScriptedEngine, stream: bool
) -> None:
    engine.push(EngineReply(content="abcdefghij", chunk_chars=2, stall_after_chunks=2))

    started = time.monotonic()
    response = post(client, timeout_ms=300, stream=stream)

    assert time.monotonic() - started < 1.5
    if stream:
        events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
        chunks = [orjson.loads(event) for event in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        choice = chunks[-1]["choices"][0]
    else:
        choice = response.json()["choices"][0]
        text = choice["message"]["content"]
    assert text == "abcd"
    assert (choice["finish_reason"], choice["stop_reason"]) == ("length", "deadline")
    assert engine.hung_up.wait(3)


def test_client_disconnect_closes_the_engine_stream(
    client: httpx.Client, engine: ScriptedEngine, base_url: str
) -> None:
    engine.push(EngineReply(content="x" * 400, chunk_chars=2, chunk_delay_s=0.02))
    before = metric_value(base_url, "llm_cancellations_total", reason="disconnect")

    with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as response:
        assert next(line for line in response.iter_lines() if '"x' in line)

    assert engine.hung_up.wait(5)
    deadline = time.monotonic() + 5
    while metric_value(base_url, "llm_cancellations_total", reason="disconnect") != before + 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert metric_value(base_url, "llm_active_requests") == 0


def test_whitespace_runaway_is_cut_with_length(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    engine.push(
        EngineReply(content='{"a": 1' + " \n" * 200 + "}", chunk_chars=3, chunk_delay_s=0.01)
    )

    choice = post(client, response_format=JSON_OBJECT).json()["choices"][0]

    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == '{"a": 1' + (" \n" * 16)
    assert engine.hung_up.wait(3)


def test_whitespace_inside_strings_is_left_alone(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    content = '{"reply": "' + " " * 100 + '"}'
    engine.push(EngineReply(content=content))

    choice = post(client, response_format=JSON_OBJECT).json()["choices"][0]

    assert (choice["finish_reason"], choice["message"]["content"]) == ("stop", content)


def test_free_text_is_never_cut_for_whitespace(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    content = "a" + " " * 100 + "b"
    engine.push(EngineReply(content=content))

    assert post(client).json()["choices"][0]["message"]["content"] == content


def test_engine_error_mid_stream(client: httpx.Client, engine: ScriptedEngine) -> None:
    engine.push(EngineReply(mid_stream_error="the engine crashed"))
    engine.push(EngineReply(mid_stream_error="the engine crashed"))

    whole = post(client)
    streamed = post(client, stream=True)

    assert "the engine crashed" in error_of(whole, 502)["message"]
    events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    assert "the engine crashed" in orjson.loads(events[-2])["error"]["message"]


def test_unreachable_upstream_is_never_ready(backend: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = local_settings(
        llm_backend=backend, llm_upstream_url=f"http://user:pw@127.0.0.1:{closed_port}/v1"
    )
    with ServerThread(create_app(settings)) as server:
        time.sleep(0.1)
        health = httpx.get(f"{server.url}/health")
        chat = httpx.post(f"{server.url}/v1/chat/completions", json=BODY)
        config = httpx.get(f"{server.url}/config").text

    assert error_of(health, 503)["code"] == "not_ready"
    assert error_of(chat, 503)["code"] == "not_ready"
    assert "pw" not in config
