"""Enum slot values from word stems."""

from __future__ import annotations

from dm.extract.text import normalize


def match_enum(text: str, synonyms: dict[str, list[str]]) -> str | None:
    """The one value whose stem starts a word of `text`, or None if none or several do.

    `synonyms` maps each value to stems in any language ({"mri_knee": ["колен", "knee"]});
    "коленного" matches "колен". Matching ignores case and reads ё as е. A value written
    out in the text ("mri_knee") matches as one of its own stems.
    """
    normalized = normalize(text)
    matched = {
        value
        for value, stems in synonyms.items()
        if any(_starts_a_word(normalize(stem).strip(), normalized) for stem in [value, *stems])
    }
    return matched.pop() if len(matched) == 1 else None


def _starts_a_word(stem: str, normalized: str) -> bool:
    if not stem:
        return False
    position = normalized.find(stem)
    while position != -1:
        before = normalized[position - 1 : position]
        if not (before.isalnum() or before == "_"):
            return True
        position = normalized.find(stem, position + 1)
    return False
