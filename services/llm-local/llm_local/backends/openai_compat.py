"""Any OpenAI-compatible upstream (`LLM_BACKEND=openai`), and the base of the vLLM and
llama.cpp server proxies, which speak the same protocol with their own schema fields."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from llm_local.backends.base import Embeddings, FinishReason, GenerationRequest, UpstreamError
from llm_local.backends.proxy import (
    ProxyBackend,
    UpstreamCall,
    UpstreamDone,
    UpstreamPiece,
    UpstreamText,
    load_chunk,
)
from llm_local.backends.schema_keywords import ANY_ENGINE_UNSUPPORTED


def api_base_with_v1(url: str) -> tuple[str, str]:
    """The server root and its `/v1` API base, whichever of the two `url` names."""
    root = url.removesuffix("/v1")
    return root, f"{root}/v1"


class OpenAICompatibleBackend(ProxyBackend):
    name = "openai"
    unsupported_keywords = ANY_ENGINE_UNSUPPORTED

    @property
    def api_base(self) -> str:
        """Where `/chat/completions` lives; for `openai`, `LLM_UPSTREAM_URL` as the SDKs take it."""
        return self.upstream_url

    @property
    def probe_url(self) -> str:
        return f"{self.api_base}/models"

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The request fields that make the engine enforce `schema`."""
        if schema == {"type": "object"}:
            return {"response_format": {"type": "json_object"}}
        # strict: OpenAI constrains decoding only then; other engines always do.
        spec = {"name": "response", "schema": schema, "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}

    def build_call(self, request: GenerationRequest) -> UpstreamCall:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            # Always explicit: an engine's own defaults (vLLM reads generation_config.json)
            # would otherwise decide.
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if request.json_schema is not None:
            body.update(self.schema_fields(request.json_schema))
        if request.messages is None:
            body["prompt"] = request.prompt
            return UpstreamCall(f"{self.api_base}/completions", body)
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        return UpstreamCall(f"{self.api_base}/chat/completions", body)

    async def parse_stream(self, lines: AsyncIterator[str]) -> AsyncGenerator[UpstreamPiece, None]:
        finish: FinishReason | None = None
        usage: dict[str, Any] = {}
        async for line in lines:
            if not line.startswith("data:"):
                continue  # blank separators, comments, `event:` lines
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = load_chunk(self.name, data)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                if text:
                    yield UpstreamText(text)
                if reason := choice.get("finish_reason"):
                    finish = "length" if reason == "length" else "stop"
        if finish is None:
            raise UpstreamError(f"the {self.name} upstream ended its stream without a finish")
        yield UpstreamDone(finish, usage.get("prompt_tokens"), usage.get("completion_tokens"))

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        body = {"model": self.model, "input": list(inputs), "encoding_format": "float"}
        answer = await self.post_json(f"{self.api_base}/embeddings", body)
        try:
            items = sorted(answer["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
            prompt_tokens = int((answer.get("usage") or {}).get("prompt_tokens", 0))
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(f"the {self.name} upstream sent malformed embeddings") from None
        return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens)


class SelfHostedBackend(OpenAICompatibleBackend):
    """An engine serving its OpenAI API under `/v1` and a `/health` probe at its root."""

    @property
    def api_base(self) -> str:
        return api_base_with_v1(self.upstream_url)[1]

    @property
    def probe_url(self) -> str:
        return f"{api_base_with_v1(self.upstream_url)[0]}/health"
