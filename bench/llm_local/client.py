"""One streamed turn against an OpenAI-compatible server, timed from the client."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.llm_local.workload import MAX_TOKENS, SCHEMA, messages
from llm_local.embedded.validate import validate


@dataclass(slots=True)
class Turn:
    ttft_s: float | None  # to the first non-empty content delta
    latency_s: float  # to the end of the stream
    tokens: int
    finish_reason: str | None
    valid: bool
    error: str | None = None
    cached_tokens: int | None = None  # llm-local's usage.prompt_tokens_details


def payload(turn: int, *, peer: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "smollm2",
        "messages": messages(turn),
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "top_p": 1,
        "stream": True,
    }
    if peer:
        # llama-cpp-python constrains only this form (its json_schema type is ignored).
        body["response_format"] = {"type": "json_object", "schema": SCHEMA}
    else:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "turn", "schema": SCHEMA, "strict": True},
        }
        body["stream_options"] = {"include_usage": True}
    return body


def check(text: str, schema: dict[str, Any] = SCHEMA) -> bool:
    try:
        return validate(json.loads(text), schema) is None
    except ValueError:
        return False


async def stream_turn(client: httpx.AsyncClient, url: str, turn: int, *, peer: bool) -> Turn:
    return await stream_chat(client, url, payload(turn, peer=peer), SCHEMA)


async def stream_chat(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], schema: dict[str, Any]
) -> Turn:
    """One streamed chat completion; `valid`: the text validates against `schema`."""
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    chunks = 0
    usage: dict[str, Any] = {}
    finish: str | None = None
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            text = (await r.aread()).decode(errors="replace")
            return Turn(
                None, time.perf_counter() - started, 0, None, False, f"{r.status_code} {text}"
            )
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                content = (choice.get("delta") or {}).get("content")
                if content:
                    first = first if first is not None else time.perf_counter() - started
                    parts.append(content)
                    chunks += 1
                finish = choice.get("finish_reason") or finish
    text = "".join(parts)
    tokens = usage.get("completion_tokens", chunks)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return Turn(
        first,
        time.perf_counter() - started,
        tokens,
        finish,
        check(text, schema),
        cached_tokens=cached,
    )
