"""/v1/chat/completions against the deterministic backend: the OpenAI wire format,
streaming, usage, finish reasons, and every bad request answered in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from llm_local.api_models import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from support.llm_upstreams import (
    DEFAULT_REPLY,
    BackendScript,
    ScriptedBackend,
    local_settings,
    serve_llm_local,
)

MESSAGES = [
    {"role": "system", "content": "You book MRI appointments."},
    {"role": "user", "content": "I want an MRI of the knee."},
]
SCHEMA = {
    "type": "object",
    "properties": {
        "next_node": {"enum": ["ask_name", "ask_phone"]},
        "slots": {
            "type": "object",
            "properties": {
                "name": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]}
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["next_node", "slots"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def base_url(backend: ScriptedBackend) -> Iterator[str]:
    with serve_llm_local(local_settings(llm_max_tokens_limit=256), backend) as url:
        yield url


@pytest.fixture
def client(base_url: str, backend: ScriptedBackend) -> Iterator[httpx.Client]:
    backend.script = BackendScript()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def chat(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post(
        "/v1/chat/completions", json={"model": "any", "messages": MESSAGES, **fields}
    )


def sse_events(client: httpx.Client, **fields: Any) -> list[str]:
    """The `data:` payloads of a streamed answer, checking the SSE framing on the way."""
    body = {"model": "any", "messages": MESSAGES, "stream": True, **fields}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    return error


def test_answer_carries_usage_and_the_served_model(client: httpx.Client) -> None:
    response = chat(client)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "scripted-model"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": DEFAULT_REPLY}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 14
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_request_reaches_the_backend_translated(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    content = [{"type": "text", "text": "Knee, "}, {"type": "text", "text": "please."}]
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": content}]
    response = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": messages, "stop": "x", "seed": 7, "max_tokens": 9},
    )

    assert response.status_code == 200
    request = backend.requests[-1]
    assert [(m.role, m.content) for m in request.messages or ()] == [
        ("system", "Be brief."),
        ("user", "Knee, please."),
    ]
    assert request.params.stop == ("x",)
    assert request.params.seed == 7
    assert request.params.max_tokens == 9
    assert (request.params.temperature, request.params.top_p) == (
        DEFAULT_TEMPERATURE,
        DEFAULT_TOP_P,
    )
    assert request.model == "scripted-model"
    assert request.json_schema is None


def test_max_tokens_cap_finishes_with_length(client: httpx.Client) -> None:
    body = chat(client, max_completion_tokens=2).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == DEFAULT_REPLY[:8]
    assert body["usage"]["completion_tokens"] == 2


def test_stop_string_ends_the_answer(client: httpx.Client) -> None:
    body = chat(client, stop=["backend", "zzz"]).json()

    assert body["choices"][0]["message"]["content"] == "Hello from the scripted "
    assert body["choices"][0]["finish_reason"] == "stop"


def test_stream_is_openai_sse_ending_in_done(client: httpx.Client) -> None:
    events = sse_events(client)

    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == DEFAULT_REPLY
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks][-1] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_stream_include_usage_adds_a_final_usage_chunk(client: httpx.Client) -> None:
    events = sse_events(client, max_tokens=3, stream_options={"include_usage": True})

    usage_chunk = orjson.loads(events[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 3
    finish_chunk = orjson.loads(events[-3])
    assert finish_chunk["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "turn", "schema": SCHEMA, "strict": True}},
        {"type": "json_object", "schema": SCHEMA},
    ],
)
def test_json_schema_reaches_the_backend(
    client: httpx.Client, backend: ScriptedBackend, response_format: dict[str, Any]
) -> None:
    body = chat(client, response_format=response_format).json()

    assert backend.requests[-1].json_schema == SCHEMA
    assert orjson.loads(body["choices"][0]["message"]["content"]) == {
        "next_node": "ask_name",
        "slots": {"name": None},
    }


def test_json_object_means_any_object(client: httpx.Client, backend: ScriptedBackend) -> None:
    chat(client, response_format={"type": "json_object"})

    assert backend.requests[-1].json_schema == {"type": "object"}


def test_text_format_means_no_schema(client: httpx.Client, backend: ScriptedBackend) -> None:
    chat(client, response_format={"type": "text"})

    assert backend.requests[-1].json_schema is None


def test_unknown_fields_are_ignored(client: httpx.Client) -> None:
    response = chat(client, user="u-1", presence_penalty=0, parallel_tool_calls=False, metadata={})

    assert response.status_code == 200


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        content=b'{"messages": [',
        headers={"content-type": "application/json"},
    )

    error = assert_openai_error(response, 400, "malformed")
    assert error["type"] == "invalid_request_error"


def test_body_that_is_not_an_object_is_400(client: httpx.Client) -> None:
    assert_openai_error(client.post("/v1/chat/completions", json=[1, 2]), 400, "malformed")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 257}, "max_tokens"),
        ({"stop": [""]}, "stop"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, None),
    ],
)
def test_invalid_fields_are_422(
    client: httpx.Client, fields: dict[str, Any], param: str | None
) -> None:
    error = assert_openai_error(chat(client, **fields), 422, "invalid_field")

    if param is not None:
        assert error["param"].startswith(param)


def test_missing_messages_is_422(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", json={"model": "any"})

    error = assert_openai_error(response, 422, "invalid_field")
    assert error["param"] == "messages"


@pytest.mark.parametrize(
    "fields",
    [
        {"n": 2},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"logprobs": True},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                    ],
                }
            ]
        },
    ],
)
def test_unsupported_features_are_400(client: httpx.Client, fields: dict[str, Any]) -> None:
    assert_openai_error(chat(client, **fields), 400, "unsupported")


def test_schema_keyword_the_backend_cannot_enforce_is_400(client: httpx.Client) -> None:
    schema = {"type": "object", "patternProperties": {"^x": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}

    error = assert_openai_error(
        chat(client, response_format=response_format), 400, "unsupported_schema"
    )
    assert "patternProperties" in error["message"]


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "inf"])
def test_bad_deadline_header_is_400(client: httpx.Client, value: str) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES},
        headers={"X-Request-Timeout-Ms": value},
    )

    assert_openai_error(response, 400, "invalid_header")


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "application/json"])
def test_json_body_is_read_whatever_the_content_type(
    client: httpx.Client, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = client.post(
        "/v1/chat/completions", content=orjson.dumps({"messages": MESSAGES}), headers=headers
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded; charset=utf-8"]
)
def test_body_a_browser_may_send_without_preflight_is_415(
    client: httpx.Client, content_type: str
) -> None:
    response = client.post(
        "/v1/chat/completions",
        content=orjson.dumps({"messages": MESSAGES}),
        headers={"content-type": content_type},
    )

    assert_openai_error(response, 415, "unsupported_media_type")
