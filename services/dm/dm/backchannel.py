"""Short acknowledgements spoken while the reply is being made ("Угу.", "Okay.")."""

from __future__ import annotations

import re
import zlib

BACKCHANNELS: dict[str, tuple[str, ...]] = {
    "ru": ("Угу.", "Так.", "Понятно.", "Секунду.", "Хорошо.", "Ага."),
    "en": ("Mm-hmm.", "Okay.", "Got it.", "One moment.", "Right.", "I see."),
}
_WORD = re.compile(r"[\w-]+")


def choose_backchannel(lang: str, call_id: str, turn_number: int, last: str | None) -> str:
    """A backchannel for this turn: stable for a retried turn, never `last` again."""
    pool = [phrase for phrase in BACKCHANNELS.get(lang, BACKCHANNELS["en"]) if phrase != last]
    index = zlib.crc32(f"{call_id}:{turn_number}".encode()) % len(pool)
    return pool[index]


def strip_echo(reply: str, backchannel: str | None) -> str:
    """Drop a leading repeat of the backchannel from a generated reply ("Понятно. Понятно, …")."""
    if not backchannel:
        return reply
    spoken = [word.lower() for word in _WORD.findall(backchannel)]
    body = reply.lstrip()
    position = 0
    for word in spoken:
        found = _WORD.search(body, position)
        if (
            not found
            or found.group().lower() != word
            or body[position : found.start()].strip(" ,.!-—")
        ):
            return reply
        position = found.end()
    rest = body[position:].lstrip(" ,.!-—")
    return rest[:1].upper() + rest[1:] if rest else reply
