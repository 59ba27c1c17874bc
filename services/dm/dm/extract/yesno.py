"""Yes or no from a caller's answer to a confirmation question."""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple

from dm.extract.text import at, normalize, tokenize, word_set


class _Strength(Enum):
    PLAIN = "plain"  # a bare particle: "да", "нет", "yes", "no", "ага", "sure"
    STRONG = "strong"  # a word about the details: "верно", "неправильно", "correct", "wrong"


class _Signal(NamedTuple):
    yes: bool
    strength: _Strength


_YES_PLAIN = _Signal(True, _Strength.PLAIN)
_YES_STRONG = _Signal(True, _Strength.STRONG)
_NO_PLAIN = _Signal(False, _Strength.PLAIN)
_NO_STRONG = _Signal(False, _Strength.STRONG)

_PHRASES: dict[tuple[str, ...], _Signal] = {
    ("все", "так"): _YES_STRONG,
    ("именно", "так"): _YES_STRONG,
    ("так", "точно"): _YES_STRONG,
    ("sounds", "good"): _YES_STRONG,
    ("looks", "good"): _YES_STRONG,
    ("all", "right"): _YES_PLAIN,
    ("of", "course"): _YES_PLAIN,
    ("no", "problem"): _YES_PLAIN,
    ("без", "проблем"): _YES_PLAIN,
    ("uh", "huh"): _YES_PLAIN,
    ("mm", "hmm"): _YES_PLAIN,
    ("не", "так"): _NO_STRONG,
    ("не", "совсем"): _NO_STRONG,
    ("не", "то"): _NO_STRONG,
    ("не", "тот"): _NO_STRONG,
    ("не", "та"): _NO_STRONG,
    ("не", "те"): _NO_STRONG,
    ("not", "quite"): _NO_STRONG,
    ("of", "course", "not"): _NO_STRONG,
    ("absolutely", "not"): _NO_STRONG,
    ("certainly", "not"): _NO_STRONG,
}
_LONGEST_PHRASE = max(len(phrase) for phrase in _PHRASES)
_PHRASE_STARTS = frozenset(phrase[0] for phrase in _PHRASES)
_WORDS: dict[str, _Signal] = {
    **dict.fromkeys(word_set("верно верный верная верное верные точно именно"), _YES_STRONG),
    **dict.fromkeys(
        word_set("correct right exactly absolutely true perfect affirmative indeed"), _YES_STRONG
    ),
    **dict.fromkeys(word_set("да ага угу ок окей ладно хорошо конечно"), _YES_PLAIN),
    **dict.fromkeys(word_set("yes yeah yea yep yup ok okay sure mhm"), _YES_PLAIN),
    **dict.fromkeys(word_set("неверно wrong incorrect false negative"), _NO_STRONG),
    **dict.fromkeys(word_set("нет неа no nope nah"), _NO_PLAIN),
}
_STEMS: dict[str, _Signal] = {
    "правильн": _YES_STRONG,
    "подтвержд": _YES_STRONG,
    "соглас": _YES_STRONG,
    "confirm": _YES_STRONG,
    "неверн": _NO_STRONG,
    "неправильн": _NO_STRONG,
    "ошиб": _NO_STRONG,
    "исправ": _NO_STRONG,
    "измен": _NO_STRONG,
    "поменя": _NO_STRONG,
    "mistak": _NO_STRONG,
    "chang": _NO_STRONG,
    "fix": _NO_STRONG,
}
_STEM = re.compile("|".join(_STEMS))
# "t" is what is left of "isn't" / "don't" once the apostrophe splits the word.
_NEGATORS = frozenset({"не", "not", "t", "isnt", "dont", "doesnt", "never"})
# Words that may stand between a negation and a word it negates: "не совсем верно".
_INTENSIFIERS = frozenset({"совсем", "очень", "вполне", "quite", "really", "entirely", "all"})


def extract_yes_no(text: str, lang: str) -> bool | None:
    """True for a confirmation, False for a denial, None when the text is neither.

    Rules, both languages read whatever `lang` is:
    - A strong word about the details ("верно", "неправильно", "correct", "wrong",
      "давайте исправим") outweighs plain particles ("да", "нет", "yes", "no"); among
      strong words the last one wins: "нет-нет, все правильно" is True, "да, но телефон
      неверный" False.
    - With particles only, any "нет"/"no" wins: "да нет, телефон другой" is False.
    - A negated strong yes is a strong no ("не верно", "не совсем правильно", "not right",
      "isn't correct"); a negated particle or strong no counts for nothing ("not sure").
    """
    words = tokenize(normalize(text)).words
    signals = _signals(words)
    strong = [signal for signal in signals if signal.strength is _Strength.STRONG]
    if strong:
        return strong[-1].yes
    if not signals:
        return None
    return all(signal.yes for signal in signals)


def _signals(words: list[str]) -> list[_Signal]:
    signals: list[_Signal] = []
    index = 0
    while index < len(words):
        found, index = _signal_at(words, index)
        if found is not None:
            signals.append(found)
    return signals


def _signal_at(words: list[str], index: int) -> tuple[_Signal | None, int]:
    """The signal starting at `index` (longest phrase first) and the index after it."""
    word = words[index]
    if word in _PHRASE_STARTS:
        for length in range(_LONGEST_PHRASE, 1, -1):
            phrase = tuple(words[index : index + length])
            if phrase in _PHRASES:
                return _PHRASES[phrase], index + length
    found = _WORDS.get(word)
    if found is None and (stem := _STEM.match(word)) is not None:
        found = _STEMS[stem.group()]
    if found is not None and _is_negated(words, index):
        found = _NO_STRONG if found == _YES_STRONG else None
    return found, index + 1


def _is_negated(words: list[str], index: int) -> bool:
    """Whether a negator stands before `index`, maybe across intensifiers ("не совсем")."""
    before = index - 1
    while before >= index - 2 and at(words, before) in _INTENSIFIERS:
        before -= 1
    return at(words, before) in _NEGATORS
