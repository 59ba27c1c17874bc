"""Token bytes → text deltas: whole UTF-8 characters only, stop strings cut out.

A token can end in the middle of a multi-byte character (Cyrillic is two bytes,
emoji four), and a stop string can span several tokens. Bytes of an unfinished
character wait for the next token; text that could be the start of a stop string
is held back until it is known not to be one.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class Detokenizer:
    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._pending = ""

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """The text now safe to emit, and whether a stop string was found."""
        self._pending += self._decoder.decode(piece)
        if not self._stop:
            text, self._pending = self._pending, ""
            return text, False
        cut = min((i for i in (self._pending.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            text, self._pending = self._pending[:cut], ""
            return text, True
        keep = self._stop_prefix_length()
        split = len(self._pending) - keep
        text, self._pending = self._pending[:split], self._pending[split:]
        return text, False

    def flush(self, *, drop_partial: bool = False) -> str:
        """What is left at the end of generation. An unfinished character becomes U+FFFD,
        or is left out with `drop_partial`."""
        if drop_partial:
            self._decoder.reset()
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return text

    def _stop_prefix_length(self) -> int:
        """Length of the longest end of the pending text that begins a stop string."""
        pending = self._pending
        longest = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(pending)), longest, -1):
                if pending.endswith(stop[:n]):
                    longest = n
                    break
        return longest
