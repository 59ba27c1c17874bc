"""Make a child's log line readable in the stack's terminal.

The services log JSON when their stderr is not a terminal (here it is a pipe);
a JSON line becomes `12:00:01 info  event key=value …`, anything else passes as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Shown by the prefix or the time column already.
HIDDEN_FIELDS = frozenset({"event", "level", "timestamp", "service", "logger"})


@dataclass(frozen=True)
class LogLine:
    text: str
    level: str | None  # "error", "warning", … when the line said so


def render(raw: str) -> LogLine:
    line = raw.rstrip("\r\n")
    if not line.startswith("{"):
        return LogLine(line, None)
    try:
        record = json.loads(line)
    except ValueError:
        return LogLine(line, None)
    if not isinstance(record, dict) or "event" not in record:
        return LogLine(line, None)
    level = str(record.get("level", "info")).lower()
    stamp = str(record.get("timestamp", ""))
    clock = stamp[11:19] if len(stamp) >= 19 else stamp
    fields = " ".join(
        f"{key}={_value(value)}" for key, value in record.items() if key not in HIDDEN_FIELDS
    )
    parts = [part for part in (clock, f"{level:<7}", str(record["event"]), fields) if part]
    return LogLine(" ".join(parts), level)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return (
            value
            if value and " " not in value and "=" not in value
            else json.dumps(value, ensure_ascii=False)
        )
    return json.dumps(value, ensure_ascii=False)
