"""structlog set-up: JSON off a terminal, console on one, PII never written.

Callers bind `call_id` with `structlog.contextvars.bind_contextvars` at the start
of a request; every line of that request then carries it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Fields that can hold what a caller said or who they are. Their values never reach a log.
PII_FIELDS = frozenset(
    {
        "text",
        "reply",
        "heard",
        "slots",
        "name",
        "phone",
        "content",
        "messages",
        "prompt",
        "transcript",
        "summary",
        "metadata",
    }
)
REDACTED = "[redacted]"


def redact_pii(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in PII_FIELDS.intersection(event):
        event[key] = REDACTED
    return event


def configure_logging(service: str, level: str = "info", *, json: bool | None = None) -> None:
    """Route structlog and stdlib logging (uvicorn's too) through one redacting pipeline."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_pii,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
