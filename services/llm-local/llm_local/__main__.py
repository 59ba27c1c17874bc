"""`python -m llm_local`: serve the OpenAI-compatible API on LLM_PORT."""

from __future__ import annotations

import sys

import structlog

from llm_local.app import create_app
from llm_local.settings import LlmSettings
from svckit.logging import configure_logging
from svckit.server import serve
from svckit.settings import is_loopback

log = structlog.get_logger(__name__)


def main() -> None:
    settings = LlmSettings()
    configure_logging("llm-local", settings.log_level)
    if not settings.llm_api_key and not is_loopback(settings.host):
        # Without a key anyone who reaches the port may generate: loopback only.
        log.error(
            "refusing_open_bind", host=settings.host, hint="set LLM_API_KEY or HOST=127.0.0.1"
        )
        sys.exit(2)
    log.info("starting", backend=settings.llm_backend, host=settings.host, port=settings.llm_port)
    serve(create_app(settings), settings.host, settings.llm_port, settings.log_level)


if __name__ == "__main__":
    main()
