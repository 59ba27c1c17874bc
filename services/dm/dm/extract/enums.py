"""Enum slot values from word stems."""

from __future__ import annotations

from dm.extract.text import is_negated, normalize, tokenize, word_set

# Between two values named, these make the later one a correction ("knee, no, the back").
_REPAIRS = word_set("нет не ой вернее точнее лучше а no not wait actually sorry instead rather")


def match_enum(text: str, synonyms: dict[str, list[str]]) -> str | None:
    """The value a word of `text` names by one of its stems, or None.

    `synonyms` maps each value to stems in any language ({"mri_knee": ["колен", "knee"]});
    "коленного" matches "колен". Matching ignores case and reads ё as е. A value written
    out in the text ("mri_knee") matches as one of its own stems. A negated word names
    nothing ("не колено, а поясница"); of several values named, the last one counts, as
    callers correct forward ("the knee, no wait, my lower back").
    """
    normalized = normalize(text)
    words = tokenize(normalized).words
    stems = [
        (normalize(stem).strip(), value)
        for value, value_stems in synonyms.items()
        for stem in [value, *value_stems]
        if stem.strip()
    ]
    # (word index, value) of each value named; stems that are phrases or hold an apostrophe
    # ("lower back", "o'clock") are found in the text and placed at the word they start.
    named: list[tuple[int, str]] = []
    for index, word in enumerate(words):
        values = {value for stem, value in stems if stem.isalnum() and word.startswith(stem)}
        if len(values) == 1 and not is_negated(words, index):
            named.append((index, values.pop()))
    for stem, value in stems:
        if not stem.isalnum():
            position = _word_start(stem, normalized)
            if position is not None:
                named.append((len(tokenize(normalized[:position]).words), value))
    named.sort()
    if not named:
        return None
    last_index, last = named[-1]
    earlier = {value for index, value in named if value != last}
    repaired = any(word in _REPAIRS for word in words[named[0][0] : last_index])
    return last if not earlier or repaired else None


def _word_start(stem: str, normalized: str) -> int | None:
    position = normalized.find(stem)
    while position != -1:
        before = normalized[position - 1 : position]
        if not (before.isalnum() or before == "_"):
            return position
        position = normalized.find(stem, position + 1)
    return None
