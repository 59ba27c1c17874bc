"""EmbeddedBackend on the real packaged model (SmolLM2-135M): generation, schemas,
streaming text, limits, cancellation, concurrency, overload and embeddings."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llm_local.backends.base import (
    BackendError,
    DeadlineExceeded,
    GenerationRequest,
    InvalidRequest,
    Message,
    NotReady,
    Overloaded,
    SamplingParams,
    SchemaUnsupported,
    TextDelta,
)
from llm_local.embedded import clib
from llm_local.embedded.backend import EmbeddedBackend
from llm_local.embedded.model_file import ModelFileMissing
from llm_local.embedded.validate import validate
from llm_local.settings import LlmSettings
from support.backends import collect, wait_for

pytestmark = pytest.mark.model

MAX_SEQUENCES = 4
MAX_QUEUE = 2
SYSTEM = (
    "You are the dialog manager of a clinic's phone line that books MRI appointments. "
    "Answer with one JSON object: next_node (ask_name, ask_phone or confirm) and the "
    "slots name and phone you heard, null when the caller did not say them."
)
TURN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "slots": {
            "type": "object",
            "properties": {
                "name": {"anyOf": [{"type": "string", "maxLength": 12}, {"type": "null"}]},
                "phone": {"type": ["string", "null"], "maxLength": 8},
            },
            "required": ["name", "phone"],
            "additionalProperties": False,
        },
        "next_node": {"enum": ["ask_name", "ask_phone", "confirm"]},
    },
    "required": ["slots", "next_node"],
    "additionalProperties": False,
}


def settings(**overrides: Any) -> LlmSettings:
    values: dict[str, Any] = {
        "llm_n_ctx": 2048,
        "llm_n_threads": 1,
        "llm_max_sequences": MAX_SEQUENCES,
        "llm_max_queue": MAX_QUEUE,
    }
    return LlmSettings(**(values | overrides))


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(settings())
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


def chat(
    user: str,
    *,
    system: str | None = SYSTEM,
    schema: dict[str, Any] | None = None,
    max_tokens: int = 64,
    deadline: float | None = None,
    stop: tuple[str, ...] = (),
) -> GenerationRequest:
    messages = (Message("system", system),) if system else ()
    return GenerationRequest(
        request_id=f"test-{time.monotonic_ns()}",
        params=SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=stop),
        messages=(*messages, Message("user", user)),
        json_schema=schema,
        deadline=deadline,
    )


async def test_chat_generation(backend: EmbeddedBackend) -> None:
    deltas, finished = await collect(backend, chat("Say hello.", system=None, max_tokens=12))

    assert "".join(deltas).strip()
    assert finished.finish_reason in ("stop", "length")
    assert finished.prompt_tokens > 5
    assert 1 <= finished.completion_tokens <= 12


async def test_completion_uses_the_raw_prompt(backend: EmbeddedBackend) -> None:
    request = GenerationRequest(
        request_id="completion",
        params=SamplingParams(max_tokens=4, temperature=0.0),
        prompt="The capital of France is",
    )

    deltas, finished = await collect(backend, request)

    assert finished.prompt_tokens == 5
    assert 1 <= finished.completion_tokens <= 4
    assert "".join(deltas)


async def test_schema_output_parses_and_validates(backend: EmbeddedBackend) -> None:
    deltas, finished = await collect(
        backend,
        chat("Hi, I am Anna Smith, my phone is 555 0134.", schema=TURN_SCHEMA, max_tokens=96),
    )

    assert finished.finish_reason == "stop"
    value = json.loads("".join(deltas))
    assert validate(value, TURN_SCHEMA) is None
    assert value["next_node"] in ("ask_name", "ask_phone", "confirm")
    name, phone = value["slots"]["name"], value["slots"]["phone"]
    assert name is None or len(name) <= 12
    assert phone is None or len(phone) <= 8  # the bound survives "type": [..., "null"]
    assert backend.stats().extra["schema_violations"] == 0


async def test_json_object_gives_any_object(backend: EmbeddedBackend) -> None:
    deltas, _ = await collect(
        backend,
        chat("Give me a JSON object about a cat.", schema={"type": "object"}, max_tokens=48),
    )

    assert isinstance(json.loads("".join(deltas)), dict)


async def test_literals_with_quotes_and_backslashes_stay_valid_json(
    backend: EmbeddedBackend,
) -> None:
    schema = {"enum": ['say "hi"', "back\\slash"]}

    deltas, finished = await collect(backend, chat("Pick one.", schema=schema, max_tokens=16))

    assert finished.finish_reason == "stop"
    assert json.loads("".join(deltas)) in schema["enum"]


async def test_multibyte_text_is_never_split_across_deltas(backend: EmbeddedBackend) -> None:
    expected = "Привет, мир! 😀 Ёжик"

    deltas, finished = await collect(backend, chat("Greet me.", schema={"const": expected}))

    assert finished.finish_reason == "stop"
    assert len(deltas) > 3
    assert all(delta and "\ufffd" not in delta for delta in deltas)
    assert json.loads("".join(deltas)) == expected


async def test_stop_string_spanning_deltas_cuts_the_text(backend: EmbeddedBackend) -> None:
    request = chat("Go.", schema={"const": "alpha beta STOP gamma"}, stop=("STOP",))

    deltas, finished = await collect(backend, request)

    assert "".join(deltas) == '"alpha beta '
    assert finished.finish_reason == "stop"


async def test_max_tokens_caps_the_completion(backend: EmbeddedBackend) -> None:
    deltas, finished = await collect(
        backend, chat("Tell me a long story about a dragon.", system=None, max_tokens=5)
    )

    assert finished.finish_reason == "length"
    assert finished.completion_tokens == 5
    assert deltas


async def test_deadline_ends_the_stream_with_length(backend: EmbeddedBackend) -> None:
    request = chat(
        "Tell me a very long story about a dragon.",
        system=None,
        max_tokens=500,
        deadline=time.monotonic() + 0.5,
    )

    _, finished = await collect(backend, request)

    assert finished.finish_reason == "length"
    assert finished.stop_cause == "deadline"
    assert finished.completion_tokens < 500


async def test_a_deadline_already_past_is_refused(backend: EmbeddedBackend) -> None:
    request = chat("Hello.", deadline=time.monotonic() - 1)

    with pytest.raises(DeadlineExceeded) as caught:
        await collect(backend, request)

    assert caught.value.status == 503
    assert caught.value.code == "deadline_exceeded"


async def test_cancelling_mid_stream_frees_the_sequence(backend: EmbeddedBackend) -> None:
    before = backend.stats().extra["cancellations"]
    stream = backend.stream(
        chat("Tell me a long story about a knight.", system=None, max_tokens=400)
    )

    received = 0
    async for event in stream:
        received += isinstance(event, TextDelta)
        if received == 2:
            break
    await stream.aclose()

    await wait_for(lambda: backend.stats().extra["cancellations"] == before + 1)
    await wait_for(lambda: backend.stats().active == 0)
    _, finished = await collect(backend, chat("Say yes.", system=None, max_tokens=4))
    assert finished.completion_tokens >= 1


async def test_concurrent_requests_all_complete_and_validate(backend: EmbeddedBackend) -> None:
    callers = [
        "My name is Ivan.",
        "Call me on 1234.",
        "Yes, confirm it please.",
        "I am Maria, phone 9876.",
    ]

    results = await asyncio.gather(
        *(collect(backend, chat(c, schema=TURN_SCHEMA, max_tokens=96)) for c in callers)
    )

    for deltas, finished in results:
        assert finished.finish_reason == "stop"
        assert validate(json.loads("".join(deltas)), TURN_SCHEMA) is None


async def test_overload_beyond_sequences_and_queue(backend: EmbeddedBackend) -> None:
    streams = [
        backend.stream(chat(f"Story number {i}.", system=None, max_tokens=300))
        for i in range(MAX_SEQUENCES + MAX_QUEUE)
    ]
    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    await wait_for(
        lambda: backend.stats().active + backend.stats().queue_depth == MAX_SEQUENCES + MAX_QUEUE
    )

    with pytest.raises(Overloaded) as caught:
        await anext(backend.stream(chat("One more.", system=None)))

    assert caught.value.status == 429
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    for first in firsts:
        first.cancel()
    await asyncio.gather(*firsts, return_exceptions=True)
    for stream in streams:
        await stream.aclose()
    await wait_for(lambda: backend.stats().active == 0 and backend.stats().queue_depth == 0)


async def test_check_schema_names_the_unsupported_keyword(backend: EmbeddedBackend) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5}}}

    with pytest.raises(SchemaUnsupported, match="multipleOf"):
        backend.check_schema(schema)
    with pytest.raises(SchemaUnsupported, match="multipleOf"):
        await collect(backend, chat("Hi.", schema=schema))


async def test_a_prompt_beyond_the_context_fails_only_that_request(
    backend: EmbeddedBackend,
) -> None:
    with pytest.raises(InvalidRequest, match="exceeds the context"):
        await collect(backend, chat("word " * 3000, system=None))

    _, finished = await collect(backend, chat("Say yes.", system=None, max_tokens=3))
    assert finished.completion_tokens >= 1


async def test_a_failed_decode_fails_live_requests_and_the_engine_recovers(
    backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_decode = clib.decode
    calls = 0

    def decode_failing_once(ctx: clib.ContextPtr, batch: clib.Batch) -> int:
        nonlocal calls
        calls += 1
        return -3 if calls == 3 else real_decode(ctx, batch)

    monkeypatch.setattr(clib, "decode", decode_failing_once)
    with pytest.raises(BackendError, match="llama_decode returned -3"):
        await collect(backend, chat("Tell me a story.", system=None, max_tokens=20))

    _, finished = await collect(backend, chat("Say yes.", system=None, max_tokens=3))
    assert finished.completion_tokens >= 1
    assert backend.stats().extra["engine_errors"] >= 1


async def test_embeddings_are_normalised_vectors(backend: EmbeddedBackend) -> None:
    result = await backend.embed(["hello world", "привет, мир", "hello world"])

    assert len(result.vectors) == 3
    assert all(len(v) == 576 for v in result.vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in result.vectors)
    assert result.vectors[0] == pytest.approx(result.vectors[2], abs=1e-5)
    assert result.prompt_tokens > 6


async def test_describe_and_stats_for_config_and_metrics(backend: EmbeddedBackend) -> None:
    info = backend.describe()
    stats = backend.stats()

    assert info["model"] == "smollm2-135m-instruct"
    assert info["model_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert info["max_sequences"] == MAX_SEQUENCES
    assert info["kv_layout"] == "unified"
    assert {"tokens_per_second", "cancellations", "prefill_tokens"} <= stats.extra.keys()
    assert stats.prefix_cache is not None
    assert stats.prefix_cache.lookups >= stats.prefix_cache.hits > 0


async def test_not_ready_before_start() -> None:
    backend = EmbeddedBackend(settings())
    with pytest.raises(NotReady):
        await anext(backend.stream(chat("Hi.")))
    assert not backend.ready


async def test_a_missing_model_file_is_named() -> None:
    backend = EmbeddedBackend(settings(llm_model_path="/nowhere/model.gguf"))

    with pytest.raises(ModelFileMissing, match=re.escape("/nowhere/model.gguf")):
        await backend.start()
