"""Refuse generated replies that only parrot: the caller's words, or the agent's own lines.

A small CPU model, asked for a short reaction, often repeats what the caller just
said ("Я пишу юнит-тесты на pytest") or recites its instructions. Such a reply is
dropped before the caller hears it; the flow's own words follow as usual.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+")
ECHO_SHARE = 0.7  # a reply whose words mostly come from one of these texts is an echo


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
