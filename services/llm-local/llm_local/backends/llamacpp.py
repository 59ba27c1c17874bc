"""llama.cpp's own server (`llama-server`): the schema goes in its top-level `json_schema`.

Its `/v1/chat/completions` reads `json_schema` next to the OpenAI fields and compiles it
to a grammar (tools/server/server-common.cpp); its whitespace rule is bounded
(`space ::= | " " | "\\n"{1,2} [ \\t]{0,20}`, ggml-org/llama.cpp#7866).
"""

from __future__ import annotations

from typing import Any

from llm_local.backends.openai_compat import SelfHostedBackend
from llm_local.backends.schema_keywords import GRAMMAR_UNSUPPORTED


class LlamaCppBackend(SelfHostedBackend):
    name = "llamacpp"
    unsupported_keywords = GRAMMAR_UNSUPPORTED

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {"json_schema": schema}
