"""Prompt prefixes decoded once and reused, on the real model: repeated and shared
prompts, requests decoded together, eviction, and prefilling with POST /v1/prefill's
backend call. Each answer must still follow its own prompt: a capital city asked
after a shared preamble is right only if the reused cells are the right ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from llm_local.backends.base import (
    Finished,
    GenerationRequest,
    Message,
    PrefixCacheStats,
    SamplingParams,
)
from llm_local.embedded.backend import EmbeddedBackend
from llm_local.embedded.prefix_cache import MIN_SHARED_TOKENS
from llm_local.settings import LlmSettings
from support.backends import collect, wait_for

pytestmark = pytest.mark.model

PREAMBLE = (
    "This is a short geography quiz for school children. Each question asks for the "
    "capital city of a country in Europe, and each answer names the city in one word. "
)
CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin"}
# Tokens of a quiz prompt from the country's name on: "Italy ?\nAnswer: The capital of Italy is".
QUESTION_TAIL = 10


def quiz(country: str, preamble: str = PREAMBLE) -> str:
    question = f"Question: What is the capital of {country}?\n"
    return f"{preamble}{question}Answer: The capital of {country} is"


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    settings = LlmSettings(
        llm_n_ctx=2048,
        llm_n_threads=1,
        llm_max_sequences=4,
        llm_prefix_cache_slots=6,
        llm_prefix_cache_cells=400,
    )
    backend = EmbeddedBackend(settings)
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.close())


def completion(prompt: str, max_tokens: int = 2) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"test-{time.monotonic_ns()}",
        params=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        prompt=prompt,
    )


async def answer(backend: EmbeddedBackend, request: GenerationRequest) -> tuple[str, Finished]:
    deltas, finished = await collect(backend, request)
    return "".join(deltas), finished


def cache_stats(backend: EmbeddedBackend) -> PrefixCacheStats:
    stats = backend.stats().prefix_cache
    assert stats is not None
    return stats


async def test_a_repeated_prompt_decodes_only_its_last_token(backend: EmbeddedBackend) -> None:
    prompt = quiz("France", preamble="A quiz about the capitals of Europe. " * 3)
    first_text, _ = await answer(backend, completion(prompt))
    before = cache_stats(backend)

    again_text, again = await answer(backend, completion(prompt))

    after = cache_stats(backend)
    assert first_text.split()[0].strip(".") == again_text.split()[0].strip(".") == "Paris"
    assert again.cached_tokens == again.prompt_tokens - 1
    assert (after.lookups, after.hits) == (before.lookups + 1, before.hits + 1)
    assert after.prompt_tokens - before.prompt_tokens == again.prompt_tokens
    assert after.cached_tokens - before.cached_tokens == again.prompt_tokens - 1


async def test_prompts_sharing_a_preamble_reuse_it_and_answer_their_own_question(
    backend: EmbeddedBackend,
) -> None:
    await answer(backend, completion(quiz("Poland")))

    for country, capital in CAPITALS.items():
        text, finished = await answer(backend, completion(quiz(country)))

        assert text.split()[0].strip(".") == capital
        assert finished.cached_tokens is not None
        assert finished.cached_tokens >= finished.prompt_tokens - QUESTION_TAIL


async def test_requests_sharing_an_undecoded_prefix_decode_it_once(
    backend: EmbeddedBackend,
) -> None:
    preamble = "Geography homework, part two: European capitals, one word per answer. " * 6
    prompts = [quiz(country, preamble) for country in CAPITALS]

    results = await asyncio.gather(*(answer(backend, completion(p)) for p in prompts))

    for (text, _), capital in zip(results, CAPITALS.values(), strict=True):
        assert text.split()[0].strip(".") == capital
    decoded = sorted(f.prompt_tokens - (f.cached_tokens or 0) for _, f in results)
    # One request decodes the new preamble; the others copy its cells as they come
    # (or, arriving late, copy what is done and decode a stretch too short to wait for).
    assert decoded[-1] > 90
    assert all(d <= QUESTION_TAIL + MIN_SHARED_TOKENS for d in decoded[:-1])


async def test_the_least_recently_used_prefix_goes_when_the_cells_run_out(
    backend: EmbeddedBackend,
) -> None:
    keep = quiz("Italy", preamble="Please answer briefly. " * 4)
    await answer(backend, completion(keep))
    for n in range(8):  # each caches ~60 new cells; the budget is 400
        filler = f"Quiz number {n} of {n + 20}, with its own long introduction. " * 3
        await answer(backend, completion(quiz("Spain", preamble=filler)))
        await answer(backend, completion(keep))  # used again: stays the most recent

    stats = cache_stats(backend)
    _, again = await answer(backend, completion(keep))
    assert stats.evictions > 0
    assert stats.idle_cells <= 400
    assert stats.sequences <= 6
    assert again.cached_tokens == again.prompt_tokens - 1


async def test_a_prefilled_prompt_serves_a_request_that_starts_like_it(
    backend: EmbeddedBackend,
) -> None:
    system = Message(
        "system",
        "You are a geography teacher. You answer questions about the capitals of European "
        "countries in one short sentence.",
    )
    partial = (system, Message("user", "What is the capital of Germany? I need"))
    prefilled = await backend.prefill(partial)
    assert prefilled.queued
    assert prefilled.prefilled_tokens == prefilled.prompt_tokens - prefilled.cached_tokens > 0
    # Done once the whole prompt is decoded: asking again queues nothing.
    await wait_for(
        lambda: backend.stats().extra["prefill_tokens"] >= prefilled.prefilled_tokens, within_s=20.0
    )
    done = await backend.prefill(partial)
    assert (done.cached_tokens, done.queued) == (done.prompt_tokens, False)

    final = (system, Message("user", "What is the capital of Germany? I need it for school."))
    request = GenerationRequest(
        request_id="after-prefill",
        params=SamplingParams(max_tokens=12, temperature=0.0),
        messages=final,
    )
    text, finished = await answer(backend, request)

    # All but the chat template's closing tokens after the partial words were decoded.
    assert finished.cached_tokens is not None
    assert finished.cached_tokens >= prefilled.prompt_tokens - 6
    assert "Berlin" in text


async def test_a_request_takes_over_the_prefill_of_its_prompt(backend: EmbeddedBackend) -> None:
    preamble = "Homework for Thursday: name the capitals, one word each, no dates. " * 12
    prompt = (Message("user", quiz("Italy", preamble)),)
    before = backend.stats().extra["prefill_tokens"]

    prefilled = await backend.prefill(prompt)
    request = GenerationRequest(
        request_id="takeover",
        params=SamplingParams(max_tokens=16, temperature=0.0),
        messages=prompt,
    )
    text, finished = await answer(backend, request)

    assert prefilled.queued
    assert "Rome" in text
    # The request decoded what the background had not reached, and the background stopped.
    decoded_in_background = backend.stats().extra["prefill_tokens"] - before
    assert decoded_in_background < prefilled.prefilled_tokens
    assert finished.cached_tokens is not None
    assert finished.cached_tokens >= decoded_in_background


async def test_a_prefill_of_the_same_conversation_replaces_the_one_in_progress(
    backend: EmbeddedBackend,
) -> None:
    system = Message("system", "A long briefing about the history of Spain and its regions. " * 12)
    before = dict(cache_stats(backend).prefills)

    first = await backend.prefill((system, Message("user", "Tell me about")))
    second = await backend.prefill((system, Message("user", "Tell me about Madrid")))

    after = cache_stats(backend).prefills
    assert first.queued
    assert second.queued
    assert second.prompt_tokens > first.prompt_tokens
    assert after.get("coalesced", 0) == before.get("coalesced", 0) + 1
    await wait_for(lambda: backend.stats().extra["prefill_tokens"] > 0, within_s=20.0)
    await wait_for(lambda: backend.stats().active == 0, within_s=20.0)


async def test_prefill_is_refused_while_requests_wait_for_a_sequence(
    backend: EmbeddedBackend,
) -> None:
    streams = [
        backend.stream(completion(f"Story number {i}: once upon a time", max_tokens=300))
        for i in range(6)
    ]
    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    await wait_for(lambda: backend.stats().queue_depth == 2, within_s=20.0)

    refused = await backend.prefill((Message("user", "Something new to prefill, " * 3),))

    for first in firsts:
        first.cancel()
    await asyncio.gather(*firsts, return_exceptions=True)
    for stream in streams:
        await stream.aclose()
    assert not refused.queued
    assert refused.prefilled_tokens == 0
    await wait_for(
        lambda: backend.stats().active == 0 and backend.stats().queue_depth == 0, within_s=20.0
    )
