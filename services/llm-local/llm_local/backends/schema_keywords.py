"""JSON-schema keywords each engine cannot enforce: a request using one is refused (400)
naming it, never answered unconstrained."""

from __future__ import annotations

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

# xgrammar cannot enforce the array keywords (vLLM's backend_xgrammar.py,
# has_xgrammar_unsupported_json_features) and llguidance, vLLM's fallback, lists none of
# these as supported (microsoft/llguidance docs/json_schema.md).
VLLM_UNSUPPORTED = frozenset(
    {
        "contains",
        "dependentSchemas",
        "else",
        "if",
        "maxContains",
        "minContains",
        "not",
        "then",
        "uniqueItems",
    }
)

# An unknown engine may be either of the usual ones: refuse what either cannot enforce.
ANY_ENGINE_UNSUPPORTED = GRAMMAR_UNSUPPORTED | VLLM_UNSUPPORTED
