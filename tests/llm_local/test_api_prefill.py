"""POST /v1/prefill and the prefix cache's numbers, against deterministic backends: one
without a prefix cache (the proxies' answer) and one that reports what a cache would."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from llm_local.backends.base import (
    BackendStats,
    Message,
    PrefillResult,
    PrefixCacheStats,
)
from support.llm_upstreams import ScriptedBackend, local_settings, metric_value, serve_llm_local

KEY = "sk-local-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MESSAGES = [
    {"role": "developer", "content": "You book MRI appointments."},
    {"role": "user", "content": "Hello, I would like to"},
]


class CachingBackend(ScriptedBackend):
    """Answers prefills as a backend with a prefix cache would, and records them."""

    def __init__(self) -> None:
        super().__init__()
        self.prefilled: list[tuple[Message, ...]] = []

    async def prefill(self, messages: Sequence[Message]) -> PrefillResult:
        self.prefilled.append(tuple(messages))
        return PrefillResult(prompt_tokens=40, cached_tokens=12, prefilled_tokens=28, queued=True)

    def stats(self) -> BackendStats:
        cache = PrefixCacheStats(
            lookups=10,
            hits=7,
            prompt_tokens=3000,
            cached_tokens=2100,
            cells=900,
            idle_cells=400,
            sequences=5,
            evictions=2,
            prefills={"queued": 3, "dropped": 1},
        )
        return BackendStats(prefix_cache=cache)


@pytest.fixture(scope="module")
def caching() -> CachingBackend:
    return CachingBackend()


@pytest.fixture(scope="module")
def caching_url(caching: CachingBackend) -> Iterator[str]:
    with serve_llm_local(local_settings(llm_api_key=KEY), caching) as url:
        yield url


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    with serve_llm_local(local_settings(), ScriptedBackend()) as url:
        yield url


def prefill(base_url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/prefill", json=body, headers=headers)


def test_a_backend_without_a_prefix_cache_answers_unsupported(plain_url: str) -> None:
    response = prefill(plain_url, {"messages": MESSAGES})

    assert response.status_code == 200
    assert response.json() == {"supported": False}


def test_the_backend_prefills_the_messages_and_its_answer_is_returned(
    caching_url: str, caching: CachingBackend
) -> None:
    body = {"model": "any", "messages": MESSAGES, "temperature": 9, "max_tokens": -1}

    response = prefill(caching_url, body, **AUTH)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "prompt_tokens": 40,
        "cached_tokens": 12,
        "prefilled_tokens": 28,
        "queued": True,
    }
    assert caching.prefilled[-1] == (
        Message("system", "You book MRI appointments."),
        Message("user", "Hello, I would like to"),
    )


def test_prefill_needs_the_key(caching_url: str) -> None:
    response = prefill(caching_url, {"messages": MESSAGES})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "invalid_field"),
        ({"messages": []}, 422, "invalid_field"),
        (
            {
                "messages": MESSAGES,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "t", "schema": {"patternProperties": {}}},
                },
            },
            400,
            "unsupported_schema",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "unsupported",
        ),
    ],
)
def test_a_bad_prefill_request_is_refused_in_openai_shape(
    caching_url: str, body: dict[str, Any], status: int, code: str
) -> None:
    response = prefill(caching_url, body, **AUTH)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_metrics_expose_the_prefix_cache(caching_url: str) -> None:
    assert metric_value(caching_url, "llm_prefix_cache_lookups_total") == 10
    assert metric_value(caching_url, "llm_prefix_cache_hits_total") == 7
    assert metric_value(caching_url, "llm_prefix_cache_prompt_tokens_total") == 3000
    assert metric_value(caching_url, "llm_prefix_cache_cached_tokens_total") == 2100
    assert metric_value(caching_url, "llm_prefix_cache_evictions_total") == 2
    assert metric_value(caching_url, "llm_prefix_cache_cells") == 900
    assert metric_value(caching_url, "llm_prefix_cache_idle_cells") == 400
    assert metric_value(caching_url, "llm_prefix_cache_sequences") == 5
    assert metric_value(caching_url, "llm_prefill_requests_total", outcome="dropped") == 1


def test_usage_leaves_out_cached_tokens_a_backend_does_not_report(plain_url: str) -> None:
    body = {"messages": MESSAGES, "max_tokens": 3}

    usage = httpx.post(f"{plain_url}/v1/chat/completions", json=body).json()["usage"]

    assert "prompt_tokens_details" not in usage
