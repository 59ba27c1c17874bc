"""The official `openai` client against llm-local under a real uvicorn: once over the
deterministic backend (the wire format as the SDK parses it), once over the real
embedded model (`model` marker), where every structured answer must parse and
validate against its schema within the token cap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from support.llm_upstreams import ScriptedBackend, local_settings, serve_llm_local

MAX_TOKENS = 96
TURN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "next_node": {"enum": ["ask_name", "ask_phone", "confirm"]},
        "slots": {
            "type": "object",
            "properties": {
                "name": {"anyOf": [{"type": "string", "maxLength": 24}, {"type": "null"}]},
                "phone": {"anyOf": [{"type": "string", "maxLength": 16}, {"type": "null"}]},
            },
            "required": ["name", "phone"],
            "additionalProperties": False,
        },
        "reply": {"type": "string", "maxLength": 60},
    },
    "required": ["next_node", "slots", "reply"],
    "additionalProperties": False,
}
SYSTEM = (
    "You are the dialog manager of a clinic's phone line booking MRI appointments. "
    "Answer with one JSON object: next_node (ask_name, ask_phone or confirm), the slots "
    "name and phone you heard (null when not said), and a short reply to speak."
)
CALLER_TURNS = [
    "Hello, my name is Anna Smith and I need an MRI of my knee.",
    "My phone number is 555 0134.",
    "Yes, that is all correct, please book it.",
]


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Violations of the JSON Schema subset these tests use (enough to fail loudly)."""
    if "anyOf" in schema:
        if all(schema_errors(value, option, path) for option in schema["anyOf"]):
            return [f"{path}: matches no anyOf option"]
        return []
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{path}: {value!r} not in enum"]
    kind = schema.get("type")
    checks = {
        "object": isinstance(value, dict),
        "string": isinstance(value, str),
        "null": value is None,
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
    }
    if kind is not None and not checks[kind]:
        return [f"{path}: not a {kind}"]
    errors = []
    if kind == "string" and len(value) > schema.get("maxLength", len(value)):
        errors.append(f"{path}: longer than {schema['maxLength']}")
    if kind == "object":
        properties = schema.get("properties", {})
        errors += [
            f"{path}: missing {key}" for key in schema.get("required", ()) if key not in value
        ]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: extra {key}" for key in value if key not in properties]
        for key, sub in properties.items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{path}.{key}")
    return errors


@pytest.fixture(
    scope="module", params=["scripted", pytest.param("embedded", marks=pytest.mark.model)]
)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[OpenAI, str]]:
    """An OpenAI client pointed at llm-local, and the name of the model it serves."""
    if request.param == "scripted":
        server = serve_llm_local(local_settings(), ScriptedBackend())
    else:
        # A generous timeout: a busy 2-core machine can slow the model well below its usual pace.
        settings = local_settings(llm_backend="embedded", llm_request_timeout_s=300)
        server = serve_llm_local(settings, ready_timeout_s=180)
    with server as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
        yield client, client.models.list().data[0].id
        client.close()


def turn_messages(caller: str) -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": caller}]


def test_models_list_names_the_served_model(served: tuple[OpenAI, str]) -> None:
    client, model = served

    models = client.models.list().data

    assert [m.id for m in models] == [model]
    assert model in ("scripted-model", "smollm2-135m-instruct")


def test_chat_create(served: tuple[OpenAI, str]) -> None:
    client, model = served

    completion = client.chat.completions.create(
        model="whatever-the-caller-says",
        messages=[{"role": "user", "content": "Say hello in five words."}],
        max_tokens=24,
        temperature=0,
    )

    assert completion.model == model
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 24
    assert completion.usage.prompt_tokens > 0


def test_chat_stream_with_usage(served: tuple[OpenAI, str]) -> None:
    client, _ = served

    stream = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish_reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text
    assert finish_reasons[-1] in ("stop", "length")
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 24


@pytest.mark.parametrize("caller", CALLER_TURNS)
def test_json_schema_answers_parse_and_validate(served: tuple[OpenAI, str], caller: str) -> None:
    client, _ = served

    completion = client.chat.completions.create(
        model="any",
        messages=turn_messages(caller),
        max_tokens=MAX_TOKENS,
        temperature=0,
        top_p=1,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "turn", "schema": TURN_SCHEMA, "strict": True},
        },
    )

    choice = completion.choices[0]
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= MAX_TOKENS
    assert choice.finish_reason == "stop", choice.message.content
    answer = orjson.loads(choice.message.content or "")
    assert schema_errors(answer, TURN_SCHEMA) == []


def test_json_schema_stream_parses_and_validates(served: tuple[OpenAI, str]) -> None:
    client, _ = served

    stream = client.chat.completions.create(
        model="any",
        messages=turn_messages(CALLER_TURNS[0]),
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "turn", "schema": TURN_SCHEMA, "strict": True},
        },
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert schema_errors(orjson.loads(text), TURN_SCHEMA) == []
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens <= MAX_TOKENS


def test_json_object_answer_is_an_object(served: tuple[OpenAI, str]) -> None:
    client, _ = served

    completion = client.chat.completions.create(
        model="any",
        messages=turn_messages(CALLER_TURNS[1]),
        max_tokens=MAX_TOKENS,
        temperature=0,
        response_format={"type": "json_object"},
    )

    assert isinstance(orjson.loads(completion.choices[0].message.content or ""), dict)


def test_a_prefilled_partial_turn_is_cached_for_the_final_one(served: tuple[OpenAI, str]) -> None:
    client, model = served
    partial = {"messages": turn_messages("Hello, my name is Anna Smith and I need")}

    answer = httpx.post(f"{client.base_url}prefill", json=partial).json()
    if model == "smollm2-135m-instruct":  # wait until the background has decoded it all
        deadline = time.monotonic() + 60
        while answer["cached_tokens"] < answer["prompt_tokens"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
            answer = httpx.post(f"{client.base_url}prefill", json=partial).json()
    completion = client.chat.completions.create(
        model="any", messages=turn_messages(CALLER_TURNS[0]), max_tokens=2, temperature=0
    )

    assert completion.usage is not None
    details = completion.usage.prompt_tokens_details
    if model == "scripted-model":
        assert answer == {"supported": False}
        assert details is None
    else:
        assert details is not None
        assert details.cached_tokens is not None
        # All but the chat template's tokens after the partial words.
        assert details.cached_tokens >= answer["prompt_tokens"] - 6


def test_completions_create(served: tuple[OpenAI, str]) -> None:
    client, model = served

    completion = client.completions.create(
        model="any", prompt="The capital of France is", max_tokens=8, temperature=0
    )

    assert completion.model == model
    assert completion.choices[0].text
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 8


def test_embeddings_create(served: tuple[OpenAI, str]) -> None:
    client, _ = served

    as_base64 = client.embeddings.create(model="any", input=["knee MRI", "phone number"])
    one_base64 = client.embeddings.create(model="any", input="knee MRI")
    one_floats = client.embeddings.create(model="any", input="knee MRI", encoding_format="float")

    vectors = [item.embedding for item in as_base64.data]
    assert len(vectors) == 2
    assert len(vectors[0]) == len(vectors[1]) > 0
    assert all(isinstance(x, float) for x in vectors[0])
    # base64 carries float32s: the encoding changes nothing beyond that precision. A batch
    # of two may differ in the last digits (llama.cpp sums in another order).
    assert one_floats.data[0].embedding == pytest.approx(one_base64.data[0].embedding, rel=1e-6)
    assert one_floats.data[0].embedding == pytest.approx(vectors[0], rel=1e-3)


def test_unsupported_request_raises_bad_request(served: tuple[OpenAI, str]) -> None:
    client, _ = served

    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "Hi"}], n=2
        )

    assert raised.value.code == "unsupported"


def test_invalid_field_raises_unprocessable_entity(served: tuple[OpenAI, str]) -> None:
    client, _ = served

    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "Hi"}], temperature=3
        )

    assert raised.value.code == "invalid_field"
