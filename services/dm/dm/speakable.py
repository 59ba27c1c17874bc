"""Cut streamed reply text into pieces a TTS engine can speak one by one.

A piece ends at a sentence end, or (with `min_words`) at a word boundary once
enough words have gathered; the pieces concatenate to exactly the text fed in.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"[.!?…;:](?:[\"»”')\]]*)\s+")
MIN_WORDS = 4


class SpeakableChunker:
    def __init__(self, min_words: int | None = MIN_WORDS) -> None:
        """`min_words` None: cut at sentence ends only."""
        self._pending = ""
        self._min_words = min_words

    def feed(self, text: str) -> list[str]:
        self._pending += text
        pieces: list[str] = []
        while True:
            piece = self._next_piece()
            if not piece:
                return pieces
            pieces.append(piece)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest

    def _next_piece(self) -> str:
        pending = self._pending
        sentence = SENTENCE_END.search(pending)
        if sentence:
            cut = sentence.end()
        else:
            boundary = pending.rfind(" ")
            if (
                self._min_words is None
                or boundary <= 0
                or len(pending[:boundary].split()) < self._min_words
            ):
                return ""
            cut = boundary + 1
        self._pending = pending[cut:]
        return pending[:cut]


def split_sentences(text: str) -> list[str]:
    """A whole reply as speakable pieces (sentences), concatenating to `text`."""
    pieces: list[str] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces
