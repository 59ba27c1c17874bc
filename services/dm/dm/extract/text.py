"""Normalisation and tokenising shared by the extractors."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeVar

T = TypeVar("T")
# A finder looks at the word at an index: None (nothing here), or what it read there
# (None when it read a negated or impossible value) and the index to go on from.
Finder = Callable[[int], tuple[T | None, int] | None]

_PUNCTUATION = str.maketrans(
    {"’": "'", "‘": "'", "ʼ": "'", "`": "'", "–": "-", "—": "-", "‑": "-", "−": "-"}
)
# Letters are letters proper: a digit-like symbol NFKC leaves ("⅓") is neither token.
_TOKEN = re.compile(r"[0-9]+|[^\W\d_\u2150-\u218f\u2460-\u24ff\u2070-\u209f]+")

_NEGATIONS = frozenset({"не", "not"})
# Words that may stand between a negation and what it negates: "не в понедельник", "not at 3".
_BETWEEN_NEGATION = frozenset(
    {"в", "во", "на", "к", "ко", "с", "со", "on", "at", "in", "by", "the"}
)


class Tokens(NamedTuple):
    """The runs of letters or of ASCII digits in a normalised text, and what lies around them."""

    words: list[str]
    gaps: list[str]  # gaps[i] comes before words[i]; gaps[-1] after the last word

    def gap_after(self, index: int) -> str | None:
        """The text between word `index` and the next word, or None without both."""
        if not 0 <= index < len(self.words) - 1:
            return None
        return self.gaps[index + 1]


def word_set(words: str) -> frozenset[str]:
    """The space-separated words of a table written as one string."""
    return frozenset(words.split())


def clean(text: str) -> str:
    """NFKC (so "²", "①", "₂" are plain digits), typographic apostrophes and dashes made
    ASCII; case and ё are kept."""
    return unicodedata.normalize("NFKC", text).translate(_PUNCTUATION)


# Every extractor of a turn normalises the same utterance, and enum stems are
# normalised on every match: a small cache makes that once each.
@lru_cache(maxsize=1024)
def normalize(text: str) -> str:
    """`clean`, lower-cased, with ё read as е."""
    return clean(text).lower().replace("ё", "е")


def tokenize(normalized: str) -> Tokens:
    """Letter runs and digit runs; everything else separates them."""
    return Tokens(_TOKEN.findall(normalized), _TOKEN.split(normalized))


def at(words: Sequence[str], index: int) -> str:
    """The word at `index`, or "" past either end."""
    return words[index] if 0 <= index < len(words) else ""


def is_negated(words: Sequence[str], index: int) -> bool:
    """Whether the word at `index` follows a "не"/"not" (across up to two prepositions),
    or "вместо", "instead of", "scratch", "forget": what it names is what the caller does
    not want."""
    before = index - 1
    while before >= index - 2 and at(words, before) in _BETWEEN_NEGATION:
        before -= 1
    word = at(words, before)
    if word == "of" and at(words, before - 1) == "instead":
        return True
    return word in _NEGATIONS or word in {"вместо", "scratch", "forget"}


def last_found(words: Sequence[str], finders: Sequence[Finder[T]]) -> T | None:
    """The last value any finder reads, word by word, skipping negated words.

    The last, because callers correct forward: "в среду, ой нет, в четверг",
    "at ten, no wait, eleven".
    """
    found: T | None = None
    index = 0
    while index < len(words):
        match = None
        if not is_negated(words, index):
            match = next(filter(None, (finder(index) for finder in finders)), None)
        if match is None:
            index += 1
            continue
        value, index = match
        if value is not None:
            found = value
    return found
