"""structlog set-up: JSON off a terminal, console on one; no secret and no caller text in a line.

Every line goes through one pipeline, ours and the libraries' (uvicorn's included):
- fields that can hold what a caller said or who they are are redacted by name;
- `error` holds a code or a type name; a message there (it may quote input) is redacted;
- exceptions are rendered as their type and stack only: a message can quote input, so
  only the messages of network and OS errors are kept;
- libraries that log traffic (frames, headers) never log below INFO;
- the finished line is scrubbed of credentials (`LogScrubber`): `Bearer …`, `token=…`
  in a URL, a password in a URL, and the value of every secret the service knows.

Callers bind `call_id` with `structlog.contextvars.bind_contextvars` at the start
of a request; every line of that request then carries it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping, MutableMapping
from json import dumps as json_dumps
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from dotenv import dotenv_values

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
# Free-text fields: a code or a type name passes, a sentence (a message) does not.
FREE_TEXT_FIELDS = frozenset({"error"})
CODE_LIKE = re.compile(r"[A-Za-z0-9_.:/-]{1,80}")
# Exceptions whose messages say where and why a connection failed, never what was sent.
SAFE_MESSAGE_MODULES = ("redis", "aiohttp", "asyncio", "ssl", "socket")

# Loggers that below INFO quote what goes over the wire (frames, headers, ASGI
# messages). uvicorn hands "uvicorn.error" to websockets, which logs every frame with it.
WIRE_LOGGERS = ("uvicorn.error", "uvicorn.asgi", "websockets", "httpcore", "hpack", "h11", "h2")

# Settings that hold secrets, by variable name; a URL's password is a secret too.
SECRET_VARIABLE = re.compile(r"(?:^|_)(?:API_KEYS?|PASSWORD|SECRET|TOKEN)$")
URL_VARIABLE = re.compile(r"_URL$")
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words; such a key is no secret
# A value ends at whitespace, a quote, a separator or a backslash (a JSON escape).
CREDENTIAL_PATTERNS = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;\\]+"), r"\1 " + REDACTED),
    (
        re.compile(r"(?i)([?&](?:token|access_token|api_key|apikey|key)=)[^&\s\"'#\\]*"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(://[^/\s:@\"'\\]*:)[^@\s/\"'\\]+@"), r"\1" + REDACTED + "@"),
)


class LogScrubber:
    """Removes credentials from a finished log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                # As written, and as a JSON renderer escapes it.
                forms.update({secret, json_dumps(secret)[1:-1]})
        self.secrets = sorted(forms, key=len, reverse=True)  # a longer one may contain another

    def scrub(self, line: str) -> str:
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        for pattern, replacement in CREDENTIAL_PATTERNS:
            line = pattern.sub(replacement, line)
        return line

    def __call__(self, _logger: Any, _method: str, line: str) -> str:
        """structlog processor: runs last, on the rendered line."""
        return self.scrub(line)


def known_secrets(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> set[str]:
    """The secret values among the settings: environment variables, then a `.env` file."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v})
    values.update(os.environ if environ is None else environ)
    found: set[str] = set()
    for name, value in values.items():
        upper = name.upper()
        if SECRET_VARIABLE.search(upper):
            found.update(part.strip() for part in value.split(",") if part.strip())
        elif URL_VARIABLE.search(upper):
            match = re.search(r"://[^/\s:@]*:([^@\s/]+)@", value)
            if match:
                found.add(match.group(1))
    return found


def redact_pii(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in PII_FIELDS.intersection(event):
        event[key] = REDACTED
    for key in FREE_TEXT_FIELDS.intersection(event):
        value = event[key]
        if value is not None and not (isinstance(value, str) and CODE_LIKE.fullmatch(value)):
            event[key] = REDACTED
    return event


def format_exceptions(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Render `exc_info` as `exception`: types and stacks, messages only where safe."""
    exc_info = event.pop("exc_info", None)
    exc = _exception_of(exc_info)
    if exc is not None:
        event["exception"] = render_exception(exc)
    return event


def render_exception(exc: BaseException) -> str:
    """A traceback like Python's, with the messages of unsafe exceptions redacted."""
    lines: list[str] = []
    _render(exc, lines, set(), "")
    return "".join(lines).rstrip("\n")


def _render(exc: BaseException, lines: list[str], seen: set[int], indent: str) -> None:
    seen.add(id(exc))
    cause = exc.__cause__
    earlier = cause if cause is not None else None if exc.__suppress_context__ else exc.__context__
    if earlier is not None and id(earlier) not in seen:
        _render(earlier, lines, seen, indent)
        link = "direct cause of" if cause is not None else "raised while handling"
        lines.append(f"{indent}(the exception above was the {link} the one below)\n")
    lines.append(f"{indent}Traceback (most recent call last):\n")
    for frame_line in traceback.format_list(traceback.extract_tb(exc.__traceback__)):
        lines.extend(f"{indent}{line}\n" for line in frame_line.rstrip("\n").split("\n"))
    lines.append(f"{indent}{_describe(exc)}\n")
    if isinstance(exc, BaseExceptionGroup):
        for number, inner in enumerate(exc.exceptions, start=1):
            if id(inner) not in seen:
                lines.append(f"{indent}  sub-exception {number}:\n")
                _render(inner, lines, seen, indent + "    ")


def _describe(exc: BaseException) -> str:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if isinstance(exc, BaseExceptionGroup):
        return f"{name}: {len(exc.exceptions)} sub-exception(s)"
    if isinstance(exc, OSError) or kind.__module__.split(".")[0] in SAFE_MESSAGE_MODULES:
        message = str(exc)
    else:
        message = REDACTED if str(exc) else ""
    return f"{name}: {message}" if message else name


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def configure_logging(
    service: str,
    level: str = "info",
    *,
    json: bool | None = None,
    secrets: Iterable[str] = (),
) -> LogScrubber:
    """Route structlog and stdlib logging (uvicorn's too) through one redacting pipeline.

    `secrets` adds values to scrub beyond those found by `known_secrets()`.
    """
    if json is None:
        json = not sys.stderr.isatty()
    scrubber = LogScrubber({*known_secrets(), *secrets})
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_pii,
        format_exceptions,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    # The scrubber works on the finished line: whatever a renderer wrote, it sees.
    rendering: list[Any] = [renderer, scrubber]
    structlog.configure(
        processors=[*shared, *rendering],
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
                *rendering,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Their DEBUG lines quote frames and headers: the caller's words, the keys.
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    _log_uncaught_exceptions()
    return scrubber


def _log_uncaught_exceptions() -> None:
    """Exceptions nobody caught reach the pipeline too, not the raw stderr."""
    log = structlog.get_logger("uncaught")

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught_exception", exc_info=exc.with_traceback(tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
            log.error("uncaught_thread_exception", exc_info=args.exc_value)

    def unraisablehook(args: Any) -> None:
        if args.exc_value is not None:
            log.warning("unraisable_exception", exc_info=args.exc_value)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    sys.unraisablehook = unraisablehook
