"""Read the LLM's JSON object while it streams, exposing one string field as it grows.

The model writes `{"reply": "Понятно, спасибо…", "next_node": …}` token by token.
`feed` returns the new characters of the watched field at once, so the reply can
be spoken before the object is complete; `result` parses the whole object, or
salvages what is complete when the stream was cut short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jiter


@dataclass(frozen=True, slots=True)
class ParsedObject:
    value: dict[str, Any] | None  # None: nothing usable (not JSON, or not an object)
    complete: bool  # the whole object arrived and parsed strictly


class StreamedObject:
    def __init__(self, watched_field: str | None) -> None:
        self._field = watched_field
        self._buffer = bytearray()
        self._emitted = ""
        self.broken = False  # the text so far cannot be the start of a JSON object
        self.field_complete = False  # the watched string has been closed

    @property
    def text(self) -> str:
        """All of the watched field seen so far."""
        return self._emitted

    def feed(self, chunk: str) -> str:
        """Add streamed text; return the watched field's new characters (maybe "")."""
        self._buffer += chunk.encode()
        if self._field is None or self.broken:
            return ""
        try:
            partial = jiter.from_json(bytes(self._buffer), partial_mode="trailing-strings")
        except ValueError:
            self.broken = True
            return ""
        if not isinstance(partial, dict):
            self.broken = True
            return ""
        value = partial.get(self._field)
        if not isinstance(value, str) or not value.startswith(self._emitted):
            return ""
        delta = value[len(self._emitted) :]
        self._emitted = value
        if not self.field_complete:
            # "on" keeps only values that are complete: the string is closed once it appears.
            closed = jiter.from_json(bytes(self._buffer), partial_mode="on")
            self.field_complete = isinstance(closed, dict) and self._field in closed
        return delta

    def result(self) -> ParsedObject:
        data = bytes(self._buffer)
        try:
            value = jiter.from_json(data)
        except ValueError:
            pass
        else:
            return ParsedObject(value if isinstance(value, dict) else None, complete=True)
        try:
            # "on": a value cut mid-way (string, literal) is dropped, complete ones are kept.
            salvaged = jiter.from_json(data, partial_mode="on")
        except ValueError:
            return ParsedObject(None, complete=False)
        return ParsedObject(salvaged if isinstance(salvaged, dict) else None, complete=False)
