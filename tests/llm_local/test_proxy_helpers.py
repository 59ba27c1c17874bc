"""The proxies' helpers: the whitespace guard, the schema keyword search, URL
redaction, and the mapping of a full connection pool."""

from __future__ import annotations

import httpx
import pytest

from llm_local.backends.base import GenerationRequest, Overloaded, SamplingParams
from llm_local.backends.proxy import JsonWhitespaceGuard, find_unsupported_keyword, redact_url
from llm_local.backends.vllm import VllmBackend
from support.llm_upstreams import local_settings

KEYWORDS = frozenset({"uniqueItems", "not"})


def feed_all(guard: JsonWhitespaceGuard, pieces: list[str]) -> tuple[str, bool]:
    passed = []
    for piece in pieces:
        text, cut = guard.feed(piece)
        passed.append(text)
        if cut:
            return "".join(passed), True
    return "".join(passed), False


def test_guard_cuts_after_the_limit_across_pieces() -> None:
    guard = JsonWhitespaceGuard(limit=4)

    assert feed_all(guard, ['{"a":', "  ", " \n", "\t", "1}"]) == ('{"a":   \n', True)


def test_guard_counts_only_consecutive_whitespace() -> None:
    guard = JsonWhitespaceGuard(limit=3)

    assert feed_all(guard, ['{ "a" : 1 ,', '   "b":   2 }']) == ('{ "a" : 1 ,   "b":   2 }', False)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "' + " " * 50 + '"}',
        '{"a": "say \\"' + " " * 50 + '\\""}',
        '{"a": "ends with backslash \\\\"' + " " * 3 + "}",
    ],
)
def test_guard_ignores_whitespace_inside_strings(text: str) -> None:
    assert JsonWhitespaceGuard(limit=3).feed(text) == (text, False)


def test_guard_sees_whitespace_after_a_string_with_escaped_backslash() -> None:
    text = '{"a": "x\\\\"' + " " * 10

    assert JsonWhitespaceGuard(limit=3).feed(text) == ('{"a": "x\\\\"   ', True)


@pytest.mark.parametrize(
    ("schema", "found"),
    [
        ({"type": "array", "uniqueItems": True}, ("uniqueItems", "/")),
        (
            {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}},
            ("uniqueItems", "/properties/tags"),
        ),
        ({"anyOf": [{"type": "null"}, {"not": {"type": "string"}}]}, ("not", "/anyOf/1")),
        ({"$defs": {"x": {"items": {"not": {}}}}}, ("not", "/$defs/x/items")),
        (
            {"type": "array", "items": [{"type": "string"}, {"uniqueItems": True}]},
            ("uniqueItems", "/items/1"),
        ),
    ],
)
def test_keyword_search_finds_nested_keywords(
    schema: dict[str, object], found: tuple[str, str]
) -> None:
    assert find_unsupported_keyword(schema, KEYWORDS) == found


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"not": {"type": "string"}}},
        {"enum": [{"uniqueItems": True}]},
        {"const": {"not": 1}},
        {"type": "object", "required": ["uniqueItems"]},
    ],
)
def test_keyword_search_ignores_property_names_and_values(schema: dict[str, object]) -> None:
    assert find_unsupported_keyword(schema, KEYWORDS) is None


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:secret@api.example.com/v1?key=abc#x", "https://api.example.com/v1"),
        ("http://127.0.0.1:8001/v1", "http://127.0.0.1:8001/v1"),
        ("http://[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_redact_url_drops_credentials_and_query(url: str, public: str) -> None:
    assert redact_url(url) == public


async def test_a_full_connection_pool_is_overload_not_unreachable() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={})
        raise httpx.PoolTimeout("no free connection", request=request)

    backend = VllmBackend(
        local_settings(llm_backend="vllm"), transport=httpx.MockTransport(upstream)
    )
    await backend.start()
    request = GenerationRequest(request_id="r", params=SamplingParams(max_tokens=4))
    try:
        with pytest.raises(Overloaded) as raised:
            await anext(backend.stream(request))
    finally:
        await backend.close()

    assert raised.value.status == 429
    assert backend.stats().active == 0
