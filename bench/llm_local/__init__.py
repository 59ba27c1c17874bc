"""llm-local against llama-cpp-python's own server and raw in-process calls."""
