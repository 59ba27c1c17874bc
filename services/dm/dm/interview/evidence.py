"""Quotes: cut from the candidate's answer, and checked to be the candidate's own words."""

from __future__ import annotations

from collections.abc import Sequence

from dm.interview.phrases import Span
from dm.interview.words import Word, words

QUOTE_CONTEXT = 3  # words kept on each side of what a quote is for, within its sentence


def _texts(text: str) -> list[str]:
    return [word.text for word in words(text)]


def verbatim(quote: str, text: str) -> bool:
    """Whether `quote` is a run of `text`'s words: case, punctuation, spacing and
    hesitations ("uh", "ну") aside, every word as said, in order, none left out."""
    wanted = _texts(quote)
    said = _texts(text)
    size = len(wanted)
    return size > 0 and any(
        said[start : start + size] == wanted for start in range(len(said) - size + 1)
    )


def quotes(text: str, said: Sequence[Word], spans: Sequence[Span]) -> list[str]:
    """The original text of each span with a few words of context, overlapping ones joined."""
    widened = [_widen(said, first, last) for first, last in spans]
    return [text[said[first].start : said[last].end] for first, last in _merged(widened)]


def _widen(said: Sequence[Word], first: int, last: int) -> Span:
    sentence = said[first].sentence
    start = first
    while start > 0 and first - start < QUOTE_CONTEXT and said[start - 1].sentence == sentence:
        start -= 1
    end = last
    while end < len(said) - 1 and end - last < QUOTE_CONTEXT and said[end + 1].sentence == sentence:
        end += 1
    return start, end


def _merged(spans: Sequence[Span]) -> list[Span]:
    merged: list[Span] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def overlaps(span: Span, others: Sequence[Span]) -> bool:
    return any(span[0] <= last and first <= span[1] for first, last in others)
