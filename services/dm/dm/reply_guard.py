"""Refuse generated replies a caller should not hear: parroting, or the wrong language.

A small CPU model, asked for a short reaction, often repeats what the caller just
said ("Я пишу юнит-тесты на pytest"), recites its instructions, or answers a
Russian call in English. Such a reply is dropped before the caller hears it; the
flow's own words follow as usual.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+")
ECHO_SHARE = 0.7  # a reply whose words mostly come from one of these texts is an echo
RECITAL_WORDS = 4  # this many words in a row from the LLM's instructions: a recital
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
SCRIPTS = {"ru": _CYRILLIC, "en": _LATIN}


def _words(text: str) -> list[str]:
    return [word.lower().replace("ё", "е") for word in _WORD.findall(text)]


def is_parroting(reply: str, *sources: str) -> bool:
    words = _words(reply)
    if not words:
        return True
    for source in sources:
        known = set(_words(source))
        if known and sum(word in known for word in words) / len(words) >= ECHO_SHARE:
            return True
    return False


def word_runs(text: str) -> frozenset[tuple[str, ...]]:
    """Every run of RECITAL_WORDS words in `text`, for `recites`."""
    words = _words(text)
    return frozenset(
        tuple(words[start : start + RECITAL_WORDS])
        for start in range(len(words) - RECITAL_WORDS + 1)
    )


def recites(reply: str, instruction_runs: frozenset[tuple[str, ...]]) -> bool:
    """The reply repeats RECITAL_WORDS words in a row of the instructions whose
    `word_runs` these are ("You're a polite HR assistant" of "You are a polite HR
    assistant screening a candidate")."""
    return not instruction_runs.isdisjoint(word_runs(reply))


def in_language(reply: str, lang: str) -> bool:
    """Most of the reply's letters are of the call language's script."""
    script = SCRIPTS.get(lang)
    letters = len(_CYRILLIC.findall(reply)) + len(_LATIN.findall(reply))
    return script is None or letters == 0 or len(script.findall(reply)) / letters >= 0.5
