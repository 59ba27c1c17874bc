"""Phone numbers through libphonenumber (`phonenumbers`): any region's national and
international forms, dictated digits in Russian and English words, partial numbers.

A caller's words become runs of digit groups ("восемь девятьсот шестнадцать" -> 8 916,
"double five" -> 55, "oh" beside digits -> 0); fillers may stand inside a run, a repair
("sorry", "нет", "то есть") ends it. Within a run the leftmost start that gives a number
libphonenumber accepts wins, with the longest such number. A run that gives none is kept
as the digits heard, so a caller who stops halfway is asked only for the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from dm.extract.numbers import parse_cardinal
from dm.extract.text import normalize, tokenize, word_set

_MAX_DIGITS = 15
# A partial number is worth keeping from this many digits on.
MIN_PARTIAL_DIGITS = 3
_PLUS_WORDS = word_set("плюс plus")
_ZERO_WORDS = word_set("oh o")
_REPEATS = {"double": 2, "triple": 3, "двойной": 2, "двойная": 2, "тройной": 3}
# "три нуля", "три семерки": a count, then the digit's name.
_COUNTED_DIGITS = {
    **dict.fromkeys(["нуля", "нулей", "ноля", "нолей"], "0"),
    **dict.fromkeys(["единицы", "единиц"], "1"),
    "двойки": "2",
    "тройки": "3",
    "четверки": "4",
    "пятерки": "5",
    "шестерки": "6",
    "семерки": "7",
    "восьмерки": "8",
    "девятки": "9",
}
# Words that may stand between digit groups of one number.
_INSIDE_NUMBER = word_set(
    """
    э ээ эээ эм м мм ну так вот значит и дальше далее потом тире дефис скобка
    uh um er erm hmm so then and dash hyphen bracket like
    """
)
# Words that end a run: what follows replaces what came before...
_REPAIRS = word_set("sorry no wait actually mean нет ой точнее вернее извините простите")
# ...or is what the number is not ("it's 0177, not 0171").
_NEGATIONS = word_set("not не")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True, slots=True)
class PhoneReading:
    """A number found (E.164), or the digits of the longest run when none was."""

    e164: str | None
    digits: str = ""
    plus: bool = False  # the run of `digits` began with "+"


def read_phone(text: str, region: str, partial: str = "") -> PhoneReading:
    """The number in `text`, read with `region` for national forms; `partial` holds the
    digits heard on an earlier try, which may start the number.

    >>> read_phone("my number is 415 555 0134", "US").e164
    '+14155550134'
    """
    runs = digit_runs(normalize(text))
    # The last run first: callers correct forward ("... sorry, zero one four one").
    for position, run in reversed(list(enumerate(runs))):
        found = _number_in_groups(run.groups, run.plus, region)
        if found is None and position > 0 and run.after_repair:
            found = _repaired(runs[position - 1], run.groups, region)
        if found is not None:
            return PhoneReading(found)
    heard_before = partial.lstrip("+")
    if heard_before:
        for run in runs:
            for reading in _readings(run.groups):
                digits = heard_before + "".join(reading)
                number = _accepted(digits, partial.startswith("+") or run.plus, region)
                if number is not None:
                    return PhoneReading(number)
    longest = max(runs, key=lambda run: len(_plain(run.groups)), default=_Run(False, []))
    digits = _plain(longest.groups)
    # A caller who starts over says the beginning again: the new digits replace the old.
    if heard_before and digits and not digits.startswith(heard_before[:MIN_PARTIAL_DIGITS]):
        digits = heard_before + digits
        return PhoneReading(None, digits[:_MAX_DIGITS], partial.startswith("+"))
    if len(digits) >= MIN_PARTIAL_DIGITS:
        return PhoneReading(None, digits[:_MAX_DIGITS], longest.plus)
    return PhoneReading(None)


def extract_phone(text: str, region: str = "RU") -> str | None:
    """The first phone number in `text` as E.164, or None."""
    return read_phone(text, region).e164


def _repaired(before: _Run, again: list[Group], region: str) -> str | None:
    """A number whose end the caller said again after a repair: "four one five five five
    five zero one three, no wait, zero one four three" is 415 555 0143."""
    said, repeated = _plain(before.groups), _plain(again)
    for cut in range(1, min(len(repeated), len(said)) + 1):
        number = _accepted(said[:-cut] + repeated, before.plus, region)
        if number is not None:
            return number
    return None


def replace_last_digits(e164: str, digits: str, region: str) -> str | None:
    """`e164` with its last digits replaced ("the last two digits are 68"), if valid."""
    if not 1 <= len(digits) < len(e164) - 2:
        return None
    return _accepted(e164[1 : len(e164) - len(digits)] + digits, True, region)


def format_phone(e164: str, region: str = "") -> str:
    """A number for read-back, grouped as its country says it: national form for a number
    of the call's region ("8 916 123-45-67", "415 555-0134", "07700 900123"), else
    international ("+44 7700 900123"). A string that is not E.164 comes back unchanged."""
    if not _E164.fullmatch(e164):
        return e164
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    own = number.country_code == phonenumbers.country_code_for_region(region)
    style = PhoneNumberFormat.NATIONAL if own else PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style).replace("(", "").replace(")", "")


def format_digits(digits: str) -> str:
    """Digits heard so far, in groups of three for read-back: "8 916 12"."""
    return " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))


def is_region(region: str) -> bool:
    return region in phonenumbers.SUPPORTED_REGIONS


# One group of dictated digits, and the other ways it may have been meant: "сто двадцать"
# is 120 or 100 20; "ноль" after "четыреста" may only repeat the hundred's zeros.
Group = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Run:
    plus: bool  # began with "+"
    groups: list[Group]
    after_repair: bool = False  # a repair ("sorry", "ой нет") stood right before it


def digit_runs(normalized: str) -> list[_Run]:
    """Each run of dictated or written digits, in order. A run after "not"/"не" is what
    the number is not, and is left out."""
    words, gaps = tokenize(normalized)
    runs: list[_Run] = []
    groups: list[Group] = []
    plus = False
    after_hundred = False
    ended_by = ""  # the word that ended the run before this one
    index = 0

    def close(word: str) -> None:
        nonlocal groups, plus, ended_by
        if groups and ended_by not in _NEGATIONS:
            runs.append(_Run(plus, groups, ended_by in _REPAIRS))
        if groups or word:
            ended_by = word
        groups, plus = [], False

    while index < len(words):
        word = words[index]
        if "+" in gaps[index] and not groups:
            plus = True
        group, end = _digit_group(words, index)
        if group is not None:
            if after_hundred and len(group[0]) == 1 and groups:
                # "семьсот ноль семь" is 707, "четыреста ноль ноль" 400: single digits after
                # a hundred may fill in its zeros.
                hundred = groups[-1]
                groups[-1] = (*hundred, hundred[0][0])
            after_hundred = group[0].endswith("00") and len(group[0]) == 3
            groups.append(group)
            index = end
            continue
        if word in _PLUS_WORDS:
            close("")
            plus = True
        elif word in _REPAIRS or word in _NEGATIONS or word not in _INSIDE_NUMBER:
            close(word)
        index += 1
    close("")
    return runs


def _plain(groups: list[Group]) -> str:
    """The digits as first heard."""
    return "".join(group[0] for group in groups)


def _readings(groups: list[Group]) -> list[list[str]]:
    """Every way the groups may have been meant, the plain one first (at most 64)."""
    readings: list[list[str]] = [[]]
    for group in groups:
        readings = [[*reading, choice] for reading in readings for choice in group][:64]
    return readings


def _digit_group(words: list[str], index: int) -> tuple[Group | None, int]:
    """The digits one word (or a spoken number, or "double five") stands for."""
    word = words[index]
    if word.isascii() and word.isdigit():
        return (word,), index + 1
    if word in _REPEATS and index + 1 < len(words):
        following, end = _digit_group(words, index + 1)
        if following is not None and len(following[0]) == 1:
            return (following[0] * _REPEATS[word],), end
        return None, index + 1
    if word in _ZERO_WORDS and _beside_digits(words, index):
        return ("0",), index + 1
    parsed = parse_cardinal(words, index)
    if parsed is None:
        return None, index + 1
    value, end = parsed
    counted = _COUNTED_DIGITS.get(words[end]) if end < len(words) else None
    if 2 <= value <= 4 and counted is not None:
        return (counted * value,), end + 1  # "три семерки": 777
    # Dictated English: "seven hundred", "nine hundred one two three" are 700 and 900 123.
    if "hundred" in words[index:end]:
        hundred = words.index("hundred", index, end)
        head = parse_cardinal(words[:hundred], index)
        return (str(head[0] * 100 if head is not None and head[1] == hundred else 100),), (
            hundred + 1
        )
    # "сто двадцать" is 120, or 100 then 20 when the digits only fit that way.
    if value > 100 and value % 100 >= 10 and value % 10 == 0:
        return (str(value), f"{value - value % 100}{value % 100}"), end
    return (str(value),), end


def _beside_digits(words: list[str], index: int) -> bool:
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(words):
            word = words[neighbour]
            if word.isdigit() or word in _ZERO_WORDS or word in _REPEATS:
                return True
            if parse_cardinal(words, neighbour) is not None:
                return True
    return False


def _number_in_groups(groups: list[Group], plus: bool, region: str) -> str | None:
    """A number the whole run makes, from its leftmost possible start, in any reading of
    the groups; else, as first heard, the leftmost start's longest number."""
    for reading in _readings(groups):
        for start in range(len(reading)):
            number = _accepted("".join(reading[start:]), plus and start == 0, region)
            if number is not None:
                return number
    plain = [group[0] for group in groups]
    for start in range(len(plain)):
        best = None
        digits = ""
        for group in plain[start:]:
            digits += group
            if len(digits) > _MAX_DIGITS:
                break
            best = _accepted(digits, plus and start == 0, region) or best
        if best is not None:
            return best
    return None


def _accepted(digits: str, plus: bool, region: str) -> str | None:
    """E.164 of `digits` when libphonenumber takes them for a number.

    A valid number, or one of the shape and length of its country's numbers:
    libphonenumber's range tables lag new allocations and reject the ranges set aside
    for fiction (Ofcom's 07700 900xxx, NANP's 555), and a caller hears the number read
    back before anything is booked.
    """
    if not 7 <= len(digits) <= _MAX_DIGITS:
        return None
    try:
        number = phonenumbers.parse(("+" if plus else "") + digits, None if plus else region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) and not _plausible(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _plausible(number: phonenumbers.PhoneNumber) -> bool:
    """Whether the number has the shape of its country's numbers (the numbering plan's
    pattern) and the length of its mobile or fixed-line numbers."""
    if number.country_code is None:
        return False
    region = phonenumbers.region_code_for_country_code(number.country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    national = phonenumbers.national_significant_number(number)
    general = metadata.general_desc if metadata is not None else None
    if general is None or general.national_number_pattern is None:
        return False
    if re.fullmatch(general.national_number_pattern, national) is None:
        return False
    return len(national) in _lengths_of(region)


@cache
def _lengths_of(region: str) -> frozenset[int]:
    lengths = set()
    for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is not None:
            lengths.add(len(phonenumbers.national_significant_number(example)))
    return frozenset(lengths)
