"""Numbers written as digits or as Russian and English words."""

from __future__ import annotations

from collections.abc import Sequence

from dm.extract.text import at, normalize, tokenize

# A digit run longer than this is an identifier (a phone number, say), not a count.
_MAX_DIGITS = 18


def _each(words: str, value: int) -> dict[str, int]:
    return dict.fromkeys(words.split(), value)


def _forms(stem: str, endings: str, value: int) -> dict[str, int]:
    return {stem + ending: value for ending in endings.split()}


_UNITS: dict[str, int] = {
    **_each("ноль нуль ноля нуля zero", 0),
    **_each("один одна одно одну одного одной одному одним одном one", 1),
    **_each("два две двух двум двумя two", 2),
    **_each("три трех трем тремя three", 3),
    **_each("четыре четырех четырем четырьмя four", 4),
    **_each("пять пяти пятью five", 5),
    **_each("шесть шести шестью six", 6),
    **_each("семь семи семью seven", 7),
    **_each("восемь восьми восемью eight", 8),
    **_each("девять девяти девятью nine", 9),
}
_TEENS: dict[str, int] = {}
for _value, (_ru_stem, _en) in enumerate(
    [
        ("десят", "ten"),
        ("одиннадцат", "eleven"),
        ("двенадцат", "twelve"),
        ("тринадцат", "thirteen"),
        ("четырнадцат", "fourteen"),
        ("пятнадцат", "fifteen"),
        ("шестнадцат", "sixteen"),
        ("семнадцат", "seventeen"),
        ("восемнадцат", "eighteen"),
        ("девятнадцат", "nineteen"),
    ],
    start=10,
):
    _TEENS.update(_forms(_ru_stem, "ь и ью", _value))
    _TEENS[_en] = _value
_TENS: dict[str, int] = {
    **_each("двадцать двадцати двадцатью twenty", 20),
    **_each("тридцать тридцати тридцатью thirty", 30),
    **_each("сорок сорока forty", 40),
    **_each("пятьдесят пятидесяти fifty", 50),
    **_each("шестьдесят шестидесяти sixty", 60),
    **_each("семьдесят семидесяти seventy", 70),
    **_each("восемьдесят восьмидесяти eighty", 80),
    **_each("девяносто девяноста ninety", 90),
}
_HUNDREDS: dict[str, int] = {
    **_each("сто ста", 100),
    **_each("двести двухсот", 200),
    **_each("триста трехсот", 300),
    **_each("четыреста четырехсот", 400),
    **_each("пятьсот пятисот", 500),
    **_each("шестьсот шестисот", 600),
    **_each("семьсот семисот", 700),
    **_each("восемьсот восьмисот", 800),
    **_each("девятьсот девятисот", 900),
}
_THOUSAND = frozenset({"тысяча", "тысячи", "тысячу", "тысяч", "тысячей", "thousand"})
_ARTICLES = frozenset({"a", "an"})
# Words that stand alone as a whole number; "полтора года" counts as one year.
_SPECIAL: dict[str, int] = {
    **_each("полтора полторы", 1),
    **_each("пару пара couple", 2),
    **_each("дюжина дюжину дюжины dozen", 12),
}

_ORDINALS: dict[str, int] = {
    **_each("first", 1),
    **_each("second", 2),
    **_each("third", 3),
    **_forms("трет", "ий ье ьего ьему ьем ья ьей ью ьи ьих", 3),
}
for _value, (_ru_stem, _en) in {
    1: ("перв", ""),
    2: ("втор", ""),
    4: ("четверт", "fourth"),
    5: ("пят", "fifth"),
    6: ("шест", "sixth"),
    7: ("седьм", "seventh"),
    8: ("восьм", "eighth"),
    9: ("девят", "ninth"),
    10: ("десят", "tenth"),
    11: ("одиннадцат", "eleventh"),
    12: ("двенадцат", "twelfth"),
    13: ("тринадцат", "thirteenth"),
    14: ("четырнадцат", "fourteenth"),
    15: ("пятнадцат", "fifteenth"),
    16: ("шестнадцат", "sixteenth"),
    17: ("семнадцат", "seventeenth"),
    18: ("восемнадцат", "eighteenth"),
    19: ("девятнадцат", "nineteenth"),
    20: ("двадцат", "twentieth"),
    30: ("тридцат", "thirtieth"),
}.items():
    _ORDINALS.update(_forms(_ru_stem, "ый ой ий ого ому ое ая ую ом ым ые ых ей", _value))
    if _en:
        _ORDINALS[_en] = _value


def parse_cardinal(words: Sequence[str], index: int) -> tuple[int, int] | None:
    """The whole number spelled from `words[index]` on, and the index after it.

    Components must come in falling order ("сто двадцать пять", "two thousand and five"),
    so dictated digit groups stay apart: "восемь девятьсот шестнадцать" is 8, then 916.
    """
    word = at(words, index)
    if word in _SPECIAL:
        return _SPECIAL[word], index + 1
    if word in _ARTICLES and at(words, index + 1) in _SPECIAL:
        return _SPECIAL[at(words, index + 1)], index + 2
    if word in _ARTICLES and at(words, index + 1) in _THOUSAND:
        head: tuple[int, int] | None = (1, index + 1)
    else:
        head = _below_thousand(words, index)
    if head is None and word in _THOUSAND:
        head = (1, index)
    if head is None:
        return None
    value, end = head
    if value == 0 or at(words, end) not in _THOUSAND:
        return head
    value, end = value * 1000, end + 1
    joined = at(words, end) == "and" and _is_small_number(at(words, end + 1))
    tail = _below_thousand(words, end + 1 if joined else end)
    if tail is None or tail[0] == 0:
        return value, end
    return value + tail[0], tail[1]


def _below_thousand(words: Sequence[str], index: int) -> tuple[int, int] | None:
    value, end = 0, index
    word = at(words, index)
    if word in _HUNDREDS:
        value, end = _HUNDREDS[word], index + 1
    elif at(words, index + 1) == "hundred" and (_UNITS.get(word, 0) > 0 or word in _ARTICLES):
        value, end = 100 * _UNITS.get(word, 1), index + 2
    elif word == "hundred":
        value, end = 100, index + 1
    if value and at(words, end) == "and" and _is_small_number(at(words, end + 1)):
        end += 1
    word = at(words, end)
    if word in _TENS:
        value, end = value + _TENS[word], end + 1
        if _UNITS.get(at(words, end), 0) > 0:
            value, end = value + _UNITS[at(words, end)], end + 1
    elif word in _TEENS or _UNITS.get(word, 0) > 0 or (word in _UNITS and end == index):
        value, end = value + _TEENS.get(word, _UNITS.get(word, 0)), end + 1
    return (value, end) if end > index else None


def _is_small_number(word: str) -> bool:
    return word in _TENS or word in _TEENS or _UNITS.get(word, 0) > 0


def parse_ordinal(words: Sequence[str], index: int) -> tuple[int, int] | None:
    """An ordinal word, or tens then an ordinal ("двадцать третьего", "twenty first")."""
    word = at(words, index)
    if word in _ORDINALS:
        return _ORDINALS[word], index + 1
    following = _ORDINALS.get(at(words, index + 1), 0)
    if word in _TENS and 0 < following < 10:
        return _TENS[word] + following, index + 2
    return None


def ordinal_value(word: str) -> int | None:
    """The value of a single ordinal word: "пятого" -> 5, "fifth" -> 5."""
    return _ORDINALS.get(word)


def digits_value(word: str) -> int | None:
    """A digit run as a number, or None for anything else or an overlong run."""
    if word.isascii() and word.isdigit() and len(word) <= _MAX_DIGITS:
        return int(word)
    return None


def extract_integer(text: str, lang: str) -> int | None:
    """The first whole number in `text`, as digits or number words (ru or en, any `lang`).

    "5 лет" and "лет пять" give 5, "полтора" gives 1, "a dozen" 12. A digit run longer than
    18 digits is skipped as an identifier rather than a count.
    """
    words = tokenize(normalize(text)).words
    for index, word in enumerate(words):
        if word.isdigit():
            value = digits_value(word)
            if value is not None:
                return value
            continue
        parsed = parse_cardinal(words, index)
        if parsed is not None:
            return parsed[0]
    return None
