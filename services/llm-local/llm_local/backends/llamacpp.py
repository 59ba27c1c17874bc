"""llama.cpp's own server (`llama-server`): the schema goes in its top-level `json_schema`.

Its `/v1/chat/completions` reads `json_schema` next to the OpenAI fields and compiles it
to a grammar (tools/server/server-common.cpp); its whitespace rule is bounded
(`space ::= | " " | "\\n"{1,2} [ \\t]{0,20}`, ggml-org/llama.cpp#7866).
"""

from __future__ import annotations

from typing import Any

from llm_local.backends.openai_compat import OpenAICompatibleBackend, api_base_with_v1

# llama.cpp's JSON-schema-to-grammar converter skips these silently: its known limitations
# and "unsupported features that are unlikely to be implemented" (grammars/README.md).
# Ollama compiles schemas with the same converter.
GRAMMAR_UNSUPPORTED = frozenset(
    {
        "$anchor",
        "contains",
        "dependentSchemas",
        "else",
        "if",
        "maxContains",
        "minContains",
        "not",
        "patternProperties",
        "prefixItems",
        "then",
        "uniqueItems",
    }
)


class LlamaCppBackend(OpenAICompatibleBackend):
    name = "llamacpp"
    unsupported_keywords = GRAMMAR_UNSUPPORTED

    @property
    def api_base(self) -> str:
        return api_base_with_v1(self.upstream_url)[1]

    @property
    def probe_url(self) -> str:
        return f"{api_base_with_v1(self.upstream_url)[0]}/health"

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {"json_schema": schema}
