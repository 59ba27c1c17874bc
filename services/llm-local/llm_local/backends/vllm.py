"""vLLM's OpenAI-compatible server (`vllm serve`): schemas go in `response_format`.

vLLM removed the old `guided_json` field in v0.12 and silently ignores unknown fields,
so sending it answers unconstrained (vllm-project/vllm#29326, dottxt-ai/outlines#1887);
`response_format` json_schema is what vLLM turns into `structured_outputs.json`.
"""

from __future__ import annotations

from typing import Any

from llm_local.backends.openai_compat import SelfHostedBackend
from llm_local.backends.schema_keywords import VLLM_UNSUPPORTED


class VllmBackend(SelfHostedBackend):
    name = "vllm"
    unsupported_keywords = VLLM_UNSUPPORTED

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        fields = super().schema_fields(schema)
        # vLLM merges `response_format` into these `structured_outputs`. Its grammars allow
        # unbounded whitespace, and models loop on it until max_tokens (vllm#38696). The
        # request-level `whitespace_pattern` is read by no V1 grammar backend, and this flag
        # only takes effect when vLLM honours it per request (vllm#48765) or is started with
        # `--structured-outputs-config '{"disable_any_whitespace": true}'`; the proxy's
        # whitespace guard cuts a runaway either way.
        fields["structured_outputs"] = {"disable_any_whitespace": True}
        return fields
