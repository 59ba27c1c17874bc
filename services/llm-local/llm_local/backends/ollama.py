"""Ollama through its native API: `/api/chat` with `format: <schema>` and `options`.

The native API rather than Ollama's `/v1` mapping: it exposes `num_predict` and the
other options by name, `think: false` for thinking models (with `format` set and
thinking on, Ollama generates unconstrained until the thinking ends), and a final
NDJSON line with `done_reason`, `prompt_eval_count` and `eval_count`, so usage and
`finish_reason: length` come from the engine itself.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from llm_local.backends.base import Embeddings, GenerationRequest, UpstreamError
from llm_local.backends.proxy import (
    ProxyBackend,
    UpstreamCall,
    UpstreamDone,
    UpstreamPiece,
    UpstreamText,
    load_chunk,
)
from llm_local.backends.schema_keywords import GRAMMAR_UNSUPPORTED


class OllamaBackend(ProxyBackend):
    name = "ollama"
    unsupported_keywords = GRAMMAR_UNSUPPORTED

    @property
    def root(self) -> str:
        return self.upstream_url.removesuffix("/v1").removesuffix("/api")

    @property
    def probe_url(self) -> str:
        return f"{self.root}/api/version"

    def build_call(self, request: GenerationRequest) -> UpstreamCall:
        params = request.params
        options: dict[str, Any] = {
            "num_predict": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            options["stop"] = list(params.stop)
        if params.seed is not None:
            options["seed"] = params.seed
        body: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "think": False,
            "options": options,
        }
        if request.json_schema is not None:
            # A schema even for json_object: `format: "json"` uses Ollama's builtin JSON
            # grammar, whose whitespace rule is unbounded; a schema goes through
            # llama.cpp's converter, whose rule is bounded.
            body["format"] = request.json_schema
        if request.messages is None:
            body["prompt"] = request.prompt
            body["raw"] = True  # a completion continues the prompt as given, no chat template
            return UpstreamCall(f"{self.root}/api/generate", body)
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        return UpstreamCall(f"{self.root}/api/chat", body)

    async def parse_stream(self, lines: AsyncIterator[str]) -> AsyncGenerator[UpstreamPiece, None]:
        async for line in lines:
            if not line.strip():
                continue
            chunk = load_chunk(self.name, line)
            message = chunk.get("message")
            text = message.get("content") if isinstance(message, dict) else chunk.get("response")
            if text:
                yield UpstreamText(text)
            if chunk.get("done"):
                yield UpstreamDone(
                    "length" if chunk.get("done_reason") == "length" else "stop",
                    chunk.get("prompt_eval_count"),
                    chunk.get("eval_count"),
                )
                return
        raise UpstreamError("the ollama upstream ended its stream before `done`")

    async def embed(self, inputs: Sequence[str]) -> Embeddings:
        answer = await self.post_json(
            f"{self.root}/api/embed", {"model": self.model, "input": list(inputs)}
        )
        try:
            vectors = [[float(x) for x in vector] for vector in answer["embeddings"]]
            prompt_tokens = int(answer.get("prompt_eval_count", 0))
        except (KeyError, TypeError, ValueError):
            raise UpstreamError("the ollama upstream sent malformed embeddings") from None
        return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens)
