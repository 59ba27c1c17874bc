"""Contradictions between answers: years of Python claimed at one question and a very
different number stated at a later one ("five years" ... "I've only been doing Python for
like a year"). Only whole-career statements count: "the last three years", "a year ago" and
"at this job" describe part of a career, not a different one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dm.extract import extract_integer
from dm.interview.evidence import quotes
from dm.interview.injection import without_injections
from dm.interview.phrases import Span, compile_phrase
from dm.interview.words import Word, word_set, words

# Differences smaller than this are rounding ("five or six years"), not a contradiction.
MIN_RATIO = 2.0
MIN_DIFFERENCE = 2
_YEAR = compile_phrase("year|years|yrs|год")
_ONE = word_set("a one один одного")
# Words that make a number of years part of a career, or not a career at all.
_PART = compile_phrase(
    "last|past|current|this|recent*|ago|old|every|per|once|twice|"
    "последн*|прошл*|этот|текущ*|назад|каждый|раз"
)
_NUMBER_GLUE = word_set("a an of and")  # "a couple of years", "one and a half"
_BARE_YEAR_QUANTIFIERS = word_set("всего только уже почти около целый больше меньше")
# Both statements must be about Python or programming: "a project manager for ten years"
# is not contradicted by "I've coded Python for a year".
_ABOUT_CODE = compile_phrase(
    "python|питон*|пайтон*|programming|coding|code|coder|developer|engineer*|backend*|"
    "professional*|программир*|разработ*|бэкенд*|бекенд*|профессиональн*|писать|experience|опыт*"
)
ABOUT_CODE_REACH = 6  # words either side of the number of years


@dataclass(frozen=True, slots=True)
class YearsStated:
    years: int
    quote: str
    about_code: bool


def years_stated(answer: str) -> list[YearsStated]:
    """Every whole-career number of years in an answer, in order, with its quote."""
    text = without_injections(answer)
    said = words(text)
    found = []
    for first, _ in _YEAR.find(said):
        if _is_part(said, first):
            continue
        number = _number_near(said, first)
        if number is None:
            continue
        value, span = number
        reach = said[max(0, span[0] - ABOUT_CODE_REACH) : span[1] + ABOUT_CODE_REACH + 1]
        about_code = bool(_ABOUT_CODE.find(reach))
        found.append(YearsStated(value, quotes(answer, said, [span])[0], about_code))
    return found


def contradiction(claimed: str, later: str) -> tuple[str, str] | None:
    """(the later words, the claimed words) when a later answer states a very different
    number of years of Python than the first one the candidate gave; else None."""
    claims = [stated for stated in years_stated(claimed) if stated.about_code]
    if not claims:
        return None
    claim = claims[0]
    for stated in years_stated(later):
        low, high = sorted((claim.years, stated.years))
        if stated.about_code and high - low >= MIN_DIFFERENCE and high >= MIN_RATIO * max(low, 1):
            return stated.quote, claim.quote
    return None


def _is_part(said: Sequence[Word], year: int) -> bool:
    """The year word is in "the last three years", "a year ago", "в прошлом году"..."""
    return bool(_PART.find(said[max(0, year - 3) : year + 2]))


def _number_near(said: Sequence[Word], year: int) -> tuple[int, Span] | None:
    """The number of years said around the year word at `year`, and the words that say it."""
    clause = said[year].clause
    first = year
    while first > 0 and said[first - 1].clause == clause and _in_number(said[first - 1]):
        first -= 1
    if any(word.is_number for word in said[first:year]):
        value = extract_integer(" ".join(word.text for word in said[first:year]), "en")
        if value is not None:
            return value, (first, year)
    last = year
    while last + 1 < len(said) and said[last + 1].clause == clause and said[last + 1].is_number:
        last += 1
    if last > year:
        value = extract_integer(" ".join(word.text for word in said[year + 1 : last + 1]), "ru")
        if value is not None:
            return value, (year, last)
    previous = said[year - 1].text if year > 0 and said[year - 1].clause == clause else ""
    if previous in _ONE or previous in _BARE_YEAR_QUANTIFIERS:
        return 1, (year - 1, year)
    return None


def _in_number(word: Word) -> bool:
    return word.is_number or word.text in _NUMBER_GLUE
