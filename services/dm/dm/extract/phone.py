"""Phone numbers: Russian national forms and international numbers with "+", to E.164."""

from __future__ import annotations

import re

from dm.extract.numbers import parse_cardinal
from dm.extract.text import normalize, tokenize, word_set

# Digit groups joined by spaces, hyphens, parentheses or commas, maybe after a "+".
# Dots and colons are not separators, so dates and clock times never join into a number.
_DIGIT_RUN = re.compile(r"(\+\s*)?[0-9]+(?:[\s\-(),]+[0-9]+)*")
_DIGITS = re.compile(r"[0-9]+")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_PLUS_WORDS = frozenset({"плюс", "plus"})
_ZERO_WORDS = frozenset({"oh", "o"})
_MAX_DIGITS = 15
# ITU country codes of two digits; codes starting with 1 or 7 have one, the rest three.
_TWO_DIGIT_CODES = word_set(
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98"
)


def extract_phone(text: str) -> str | None:
    """The first phone number in `text` as E.164 ("+79161234567"), or None.

    Without "+": 11 digits starting with 8 or 7, or 10 digits starting with 9, are Russian.
    With "+": "+7" needs 11 digits, "+1" 11, any other country 8 to 15. Digits may be
    dictated as words ("восемь девятьсот шестнадцать ..."). Within a run of digit groups
    the leftmost start that makes a valid number wins, taking the longest such number.
    """
    normalized = normalize(text)
    found = _first_phone(normalized)
    if found is None:
        spelled = _digits_for_words(normalized)
        if spelled != normalized:
            found = _first_phone(spelled)
    return found


def format_phone(e164: str) -> str:
    """A number for read-back: "+7 916 123-45-67"; others "+" code, then groups of digits.

    A string that is not E.164 comes back unchanged.
    """
    if not _E164.fullmatch(e164):
        return e164
    digits = e164[1:]
    if digits[0] == "7" and len(digits) == 11:
        return f"+7 {digits[1:4]} {digits[4:7]}-{digits[7:9]}-{digits[9:]}"
    code_length = 1 if digits[0] in "17" else 2 if digits[:2] in _TWO_DIGIT_CODES else 3
    return f"+{digits[:code_length]} {_grouped(digits[code_length:])}"


def _grouped(digits: str) -> str:
    groups = []
    while len(digits) > 4:
        groups.append(digits[:3])
        digits = digits[3:]
    groups.append(digits)
    return " ".join(groups)


def _first_phone(normalized: str) -> str | None:
    for run in _DIGIT_RUN.finditer(normalized):
        groups = _DIGITS.findall(run.group())
        found = _phone_in_groups(groups, has_plus=run.group(1) is not None)
        if found is not None:
            return found
    return None


def _phone_in_groups(groups: list[str], has_plus: bool) -> str | None:
    for start in range(len(groups)):
        best = None
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > _MAX_DIGITS:
                break
            candidate = _as_e164(digits, has_plus and start == 0)
            best = candidate or best
        if best is not None:
            return best
    return None


def _as_e164(digits: str, has_plus: bool) -> str | None:
    if has_plus:
        if digits[0] in "17":
            valid = len(digits) == 11 and (digits[0] == "1" or digits[1] in "3456789")
        else:
            valid = digits[0] != "0" and 8 <= len(digits) <= _MAX_DIGITS
        return "+" + digits if valid else None
    if len(digits) == 11 and digits[0] in "78" and digits[1] in "3456789":
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "+7" + digits
    return None


def _digits_for_words(normalized: str) -> str:
    """`normalized` with number words spelled as digits and "плюс"/"plus" as "+"."""
    words, gaps = tokenize(normalized)
    pieces = [gaps[0]]
    index = 0
    while index < len(words):
        parsed = parse_cardinal(words, index)
        if parsed is not None:
            replacement, end = str(parsed[0]), parsed[1]
        elif words[index] in _ZERO_WORDS and _beside_number(words, index):
            replacement, end = "0", index + 1
        elif words[index] in _PLUS_WORDS:
            replacement, end = "+", index + 1
        else:
            replacement, end = words[index], index + 1
        pieces += [replacement, gaps[end]]
        index = end
    return "".join(pieces)


def _beside_number(words: list[str], index: int) -> bool:
    """Whether a number (digits or words) stands right before or after `index`."""
    return any(
        0 <= neighbour < len(words)
        and (words[neighbour].isdigit() or parse_cardinal(words, neighbour) is not None)
        for neighbour in (index - 1, index + 1)
    )
