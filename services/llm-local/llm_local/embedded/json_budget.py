"""A schema-bound answer that can always close within its token cap.

Before the engine accepts a sampled token, `admit` works out what closing the answer
would cost after it (`json_close.completion`, counted in tokens). When that no longer
fits the cap, the token is refused and the engine ends the answer with `closing()`:
the text then parses and validates whatever cut it short, the cap or the deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from llm_local.embedded.json_close import completion

log = structlog.get_logger("llm_local.embedded")


class JsonBudget:
    def __init__(
        self, schema: dict[str, Any], max_tokens: int, count_tokens: Callable[[str], int]
    ) -> None:
        self._schema = schema
        self._max_tokens = max_tokens
        self._count = count_tokens
        self._raw = b""
        self._closing: tuple[str, int] | None = None  # for the text accepted so far

    def admit(self, piece: bytes, generated: int) -> bool:
        """Whether the answer with `piece` as its `generated`-th token still closes in
        the cap; if so the piece is taken into the text."""
        raw = self._raw + piece
        closing = self._close(raw)
        if closing is not None and generated + closing[1] > self._max_tokens:
            return False
        self._raw, self._closing = raw, closing
        return True

    def closing(self) -> tuple[str, int]:
        """The text that closes the answer so far, and its tokens."""
        if self._closing is None:
            self._closing = self._close(self._raw)
        return self._closing or ("", 0)

    def _close(self, raw: bytes) -> tuple[str, int] | None:
        # A character cut between tokens is left out: the answer would end without it.
        text = raw.decode("utf-8", "ignore")
        suffix = completion(text, self._schema)
        if suffix is None:
            log.warning("no valid completion for a schema-bound prefix", prefix=text[-80:])
            return None
        return suffix, self._count(suffix) if suffix else 0
