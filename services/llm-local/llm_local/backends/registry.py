"""The backend `LLM_BACKEND` names."""

from __future__ import annotations

from llm_local.backends.base import Backend
from llm_local.backends.llamacpp import LlamaCppBackend
from llm_local.backends.ollama import OllamaBackend
from llm_local.backends.openai_compat import OpenAICompatibleBackend
from llm_local.backends.vllm import VllmBackend
from llm_local.settings import LlmSettings


def build_backend(settings: LlmSettings) -> Backend:
    match settings.llm_backend:
        case "embedded":
            # Imported here: it loads llama-cpp-python, which the proxies never need.
            from llm_local.embedded.backend import EmbeddedBackend

            return EmbeddedBackend(settings)
        case "vllm":
            return VllmBackend(settings)
        case "llamacpp":
            return LlamaCppBackend(settings)
        case "ollama":
            return OllamaBackend(settings)
        case "openai":
            return OpenAICompatibleBackend(settings)
