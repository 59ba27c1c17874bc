"""The dm's client for llm-local: one streaming chat completion per turn.

The turn's remaining time goes along as `X-Request-Timeout-Ms`, so llm-local
stops generating when the dm stops waiting. Leaving the stream early (deadline,
barge-in) closes the connection, which llm-local also takes as a stop.

aiohttp, not httpx, carries this hop: streaming a small SSE answer cost httpx
~2.5 ms of CPU per request here against ~0.4 ms for aiohttp (bench notes in
BENCHMARKS.md), and every turn pays it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

TIMEOUT_HEADER = "X-Request-Timeout-Ms"
MAX_ERROR_BODY = 2048


class LlmError(Exception):
    """The LLM service failed: unreachable, an error status, or a broken stream."""


# llm-local stops this much before the dm's own deadline, so the dm still gets
# what was generated and can salvage it.
DEADLINE_HEADROOM_S = 0.02


@dataclass(frozen=True, slots=True)
class Completion:
    completion_tokens: int | None
    finish_reason: str | None
    # Why the LLM service stopped when finish_reason cannot say: "deadline" when the
    # X-Request-Timeout-Ms budget ran out (llm-local's and vLLM's `stop_reason`).
    stop_reason: str | None = None


class LlmClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        *,
        api_key: str = "",
        model: str = "",
        temperature: float = 0.0,
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._prefill_url = base_url.rstrip("/") + "/prefill"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model or "default"
        self._temperature = temperature

    async def stream_json(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        *,
        max_tokens: int,
        timeout_s: float,
        on_text: Callable[[str], object],
        temperature: float | None = None,
    ) -> Completion:
        """Stream a schema-constrained completion, handing each content piece to `on_text`."""
        body = {
            "model": self._model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            "temperature": self._temperature if temperature is None else temperature,
            "top_p": 1.0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "turn", "schema": schema, "strict": True},
            },
        }
        budget_ms = int((timeout_s - DEADLINE_HEADROOM_S) * 1000)
        headers = {**self._headers, TIMEOUT_HEADER: str(max(1, budget_ms))}
        tokens: int | None = None
        finish: str | None = None
        stop_reason: str | None = None
        finished = False
        try:
            async with self._http.post(
                self._url, data=orjson.dumps(body), headers=headers
            ) as response:
                if response.status != 200:
                    detail = (await response.content.read(MAX_ERROR_BODY)).decode(errors="replace")
                    raise LlmError(f"LLM service answered {response.status}: {detail}")
                # Read to the end of the body even after [DONE], so the connection goes
                # back to the pool instead of being closed.
                async for raw in response.content:
                    if finished or not raw.startswith(b"data:"):
                        continue
                    data = raw[5:].strip()
                    if data == b"[DONE]":
                        finished = True
                        continue
                    chunk = orjson.loads(data)
                    if "error" in chunk:
                        raise LlmError(f"LLM stream error: {chunk['error']}")
                    usage = chunk.get("usage")
                    if usage:
                        tokens = usage.get("completion_tokens")
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            on_text(content)
                        finish = choice.get("finish_reason") or finish
                        stop_reason = choice.get("stop_reason") or stop_reason
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise LlmError(f"LLM service unreachable: {type(exc).__name__}: {exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise LlmError("LLM stream sent a chunk that is not JSON") from exc
        if finished:
            return Completion(tokens, finish, stop_reason)
        raise LlmError("LLM stream ended without [DONE]")

    async def prefill(
        self, messages: list[dict[str, str]], schema: dict[str, Any], *, timeout_s: float
    ) -> None:
        """Ask the LLM service to decode `messages` into its prompt cache (llm-local's
        extension; another server answering 404 is fine: prefilling is an optimisation)."""
        body = {
            "model": self._model,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "turn", "schema": schema, "strict": True},
            },
        }
        try:
            async with self._http.post(
                self._prefill_url,
                data=orjson.dumps(body),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                await response.read()
                if response.status not in (200, 202, 404):
                    raise LlmError(f"LLM service answered {response.status} to a prefill")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise LlmError(f"LLM service unreachable: {type(exc).__name__}") from exc
