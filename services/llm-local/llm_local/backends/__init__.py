"""LLM engines behind llm-local's one OpenAI-compatible face."""
