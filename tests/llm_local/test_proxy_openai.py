"""LLM_BACKEND=openai against a scripted OpenAI-compatible server: the upstream key,
the base URL as the SDKs take it, strict json_schema."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from llm_local.backends.base import SchemaUnsupported
from llm_local.backends.openai_compat import OpenAICompatibleBackend, api_base_with_v1
from support.llm_upstreams import ScriptedEngine, local_settings, serve_proxy

UPSTREAM_KEY = "sk-upstream-secret"
SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine("openai", prefix="/openai/v1")


@pytest.fixture(scope="module")
def client(engine: ScriptedEngine) -> Iterator[httpx.Client]:
    settings = {"llm_upstream_api_key": UPSTREAM_KEY, "llm_model": "gpt-4o-mini"}
    with (
        serve_proxy("openai", engine, **settings) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def test_probe_and_requests_carry_the_upstream_key(
    client: httpx.Client, engine: ScriptedEngine
) -> None:
    assert client.get("/health").status_code == 200
    assert engine.probes == ["/openai/v1/models"]

    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})

    assert engine.last.path == "/openai/v1/chat/completions"
    assert engine.last.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert engine.last.body["model"] == "gpt-4o-mini"


def test_json_schema_is_sent_strict(client: httpx.Client, engine: ScriptedEngine) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}

    client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "response_format": response_format},
    )

    assert engine.last.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }
    assert "structured_outputs" not in engine.last.body


def test_config_names_the_upstream_but_never_the_key(client: httpx.Client) -> None:
    response = client.get("/config")

    assert response.json()["backend"] == "openai"
    assert response.json()["upstream_url"].endswith("/openai/v1")
    assert UPSTREAM_KEY not in response.text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://gpu:8000", ("http://gpu:8000", "http://gpu:8000/v1")),
        ("http://gpu:8000/v1", ("http://gpu:8000", "http://gpu:8000/v1")),
    ],
)
def test_api_base_takes_either_url_form(url: str, expected: tuple[str, str]) -> None:
    assert api_base_with_v1(url) == expected


@pytest.mark.parametrize("keyword", ["patternProperties", "uniqueItems", "if"])
def test_unknown_engine_refuses_what_a_usual_engine_cannot_enforce(keyword: str) -> None:
    backend = OpenAICompatibleBackend(
        local_settings(llm_backend="openai", llm_upstream_url="http://127.0.0.1:9/v1")
    )
    with pytest.raises(SchemaUnsupported, match=keyword):
        backend.check_schema({"type": "object", keyword: {}})
