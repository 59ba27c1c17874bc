"""Phrases a rubric looks for in an answer, written as data.

A phrase is words separated by spaces; each word may be
- `pytest`: the word, or a Russian word whose dictionary form it is ("тест" finds "тестов");
- `test*`: any word (or Russian dictionary form) that starts so;
- `<n>`: a number, in digits or words ("6", "six", "шести"); `<3+>`: a number of 3 or more;
- `<neg>`: a negation ("not", "never", "don't", "не", "нет");
- `a|b`: either.
Up to MAX_GAP other words may stand between the words of a phrase, never across a
clause ("but", "а", a full stop); words joined by `_` stand next to each other
("<neg>_much": "not much", never "not used much"). Hesitations ("uh", "ну") are not words here.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from dm.interview.words import Word, normalize, words

MAX_GAP = 3
NUMBER = "<n>"
NEGATION = "<neg>"
_AT_LEAST = re.compile(r"<(\d+)\+>")

Span = tuple[int, int]  # first and last word index, inclusive
Found = dict[int, list[Span]]  # a phrase's key -> where it is said
_KEYS = itertools.count()


@dataclass(frozen=True, slots=True)
class _Alternative:
    word: str
    prefix: bool
    at_least: int | None = None

    def matches(self, word: Word) -> bool:
        if self.at_least is not None:
            value = word.value
            return value is not None and value >= self.at_least
        if self.word == NUMBER:
            return word.is_number
        if self.word == NEGATION:
            return word.is_negation
        if self.prefix:
            return word.text.startswith(self.word) or word.lemma.startswith(self.word)
        return self.word in (word.text, word.lemma)


@dataclass(frozen=True, slots=True)
class Phrase:
    source: str
    slots: tuple[tuple[_Alternative, ...], ...]
    adjacent: tuple[bool, ...]  # per slot: it must follow the one before with no gap
    key: int = field(default_factory=lambda: next(_KEYS), compare=False)

    @property
    def says_not(self) -> bool:
        """The phrase has its own negation ("<neg> take it personally")."""
        return any(alt.word == NEGATION for slot in self.slots for alt in slot)

    def find(self, said: Sequence[Word]) -> list[Span]:
        """Every (first, last) word index where the phrase is said, first match per start."""
        found = []
        for start in range(len(said)):
            end = self.end_at(said, start)
            if end is not None:
                found.append((start, end))
        return found

    def end_at(self, said: Sequence[Word], start: int) -> int | None:
        """The last word of the phrase said from `start` on, or None."""
        if not any(alt.matches(said[start]) for alt in self.slots[0]):
            return None
        return self._rest(said, start, 1)

    def _rest(self, said: Sequence[Word], at: int, slot: int) -> int | None:
        if slot == len(self.slots):
            return at
        gap = 0 if self.adjacent[slot] else MAX_GAP
        for nxt in range(at + 1, min(at + 2 + gap, len(said))):
            if said[nxt].clause != said[at].clause:
                return None
            if any(alt.matches(said[nxt]) for alt in self.slots[slot]):
                end = self._rest(said, nxt, slot + 1)
                if end is not None:
                    return end
        return None


class PhraseIndex:
    """Many phrases found in one pass: each word is tried only against the phrases that can
    start with it (rubrics hold hundreds of phrases, and an answer is read on every turn)."""

    def __init__(self, phrases: Sequence[Phrase]) -> None:
        self._phrases = list(phrases)
        self._exact: dict[str, list[int]] = defaultdict(list)
        self._prefix: dict[str, list[int]] = defaultdict(list)
        self._numbers: list[int] = []  # starting with a number
        self._negations: list[int] = []
        for number, phrase in enumerate(self._phrases):
            for alt in phrase.slots[0]:
                if alt.at_least is not None or alt.word == NUMBER:
                    self._numbers.append(number)
                elif alt.word == NEGATION:
                    self._negations.append(number)
                else:
                    (self._prefix if alt.prefix else self._exact)[alt.word].append(number)
        self._prefix_sizes = sorted({len(prefix) for prefix in self._prefix})

    def find(self, said: Sequence[Word]) -> Found:
        """Where each phrase is said (by its key), in the order of the words they start at."""
        found: Found = defaultdict(list)
        for start, word in enumerate(said):
            for number in sorted(self._starting(word)):
                phrase = self._phrases[number]
                end = phrase.end_at(said, start)
                if end is not None:
                    found[phrase.key].append((start, end))
        return found

    def _starting(self, word: Word) -> set[int]:
        """The phrases whose first word may be `word`."""
        starting = set(self._numbers if word.is_number else ())
        starting.update(self._negations if word.is_negation else ())
        for form in {word.text, word.lemma}:
            starting.update(self._exact.get(form, ()))
            for size in self._prefix_sizes:
                if size > len(form):
                    break
                starting.update(self._prefix.get(form[:size], ()))
        return starting


def compile_phrase(source: str) -> Phrase:
    """A phrase from its written form; ValueError names what cannot be matched."""
    slots = []
    adjacent = []
    for part in source.split():
        for position, piece in enumerate(part.split("_")):
            slots.append(tuple(_alternative(alt, source) for alt in piece.split("|")))
            adjacent.append(position > 0)
    if not slots:
        raise ValueError("an empty phrase")
    return Phrase(source, tuple(slots), tuple(adjacent))


def _alternative(alt: str, source: str) -> _Alternative:
    if alt in (NUMBER, NEGATION):
        return _Alternative(alt, prefix=False)
    if threshold := _AT_LEAST.fullmatch(alt):
        return _Alternative(alt, prefix=False, at_least=int(threshold[1]))
    prefix = alt.endswith("*")
    word = normalize(alt.removesuffix("*"))
    said = words(word, keep_fillers=True)
    if len(said) != 1 or said[0].text != word:
        raise ValueError(f"phrase {source!r}: {alt!r} is not one word")
    return _Alternative(word, prefix)
