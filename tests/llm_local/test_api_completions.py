"""/v1/completions and /v1/embeddings against the deterministic backend."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from support.llm_upstreams import DEFAULT_REPLY, ScriptedBackend, local_settings, serve_llm_local


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def client(backend: ScriptedBackend) -> Iterator[httpx.Client]:
    with (
        serve_llm_local(local_settings(llm_max_tokens_limit=64), backend) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def complete(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post("/v1/completions", json={"model": "any", "prompt": "Once upon", **fields})


def test_completion_continues_the_prompt(client: httpx.Client, backend: ScriptedBackend) -> None:
    body = complete(client, max_tokens=64).json()

    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == DEFAULT_REPLY
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 14
    request = backend.requests[-1]
    assert (request.prompt, request.messages) == ("Once upon", None)


def test_completion_defaults_to_sixteen_tokens(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    complete(client)

    assert backend.requests[-1].params.max_tokens == 16


def test_completion_accepts_a_list_of_one_prompt(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    complete(client, prompt=["Twice upon"])

    assert backend.requests[-1].prompt == "Twice upon"


def test_completion_stream_ends_with_usage_and_done(client: httpx.Client) -> None:
    body = {
        "prompt": "x",
        "stream": True,
        "max_tokens": 2,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/completions", json=body) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]

    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == DEFAULT_REPLY[:8]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_completion_with_json_schema(client: httpx.Client, backend: ScriptedBackend) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}

    body = complete(client, response_format=response_format).json()

    assert orjson.loads(body["choices"][0]["text"]) == {"ok": False}
    assert backend.requests[-1].json_schema == schema


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"echo": True}, 400),
        ({"suffix": "end"}, 400),
        ({"best_of": 3}, 400),
        ({"n": 2}, 400),
        ({"logprobs": 2}, 400),
        ({"prompt": ["one", "two"]}, 422),
        ({"prompt": [[1, 2, 3]]}, 422),
        ({"max_tokens": 65}, 422),
    ],
)
def test_completion_rejects_what_it_cannot_do(
    client: httpx.Client, fields: dict[str, Any], status: int
) -> None:
    response = complete(client, **fields)

    assert response.status_code == status
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_embeddings_as_floats(client: httpx.Client) -> None:
    response = client.post(
        "/v1/embeddings", json={"model": "any", "input": ["ab", "abc"], "encoding_format": "float"}
    )

    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == "scripted-model"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert [item["embedding"][0] for item in body["data"]] == [2.0, 3.0]
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_embeddings_as_base64_float32(client: httpx.Client) -> None:
    body = client.post("/v1/embeddings", json={"input": "abcd", "encoding_format": "base64"}).json()

    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack(f"<{len(raw) // 4}f", raw)[0] == 4.0


def test_embeddings_reject_dimensions(client: httpx.Client) -> None:
    response = client.post("/v1/embeddings", json={"input": "abcd", "dimensions": 2})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported"
