"""llm-local: one OpenAI-compatible face over several LLM engines."""
