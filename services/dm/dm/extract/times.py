"""Clock times from what a caller said, read for a clinic open 8:00-20:00."""

from __future__ import annotations

import re
from datetime import time
from enum import Enum

from dm.extract.dates import month_of
from dm.extract.numbers import digits_value, ordinal_value, parse_cardinal
from dm.extract.text import Tokens, at, last_found, normalize, tokenize


class _Part(Enum):
    """Part of day a marker names."""

    MORNING = "am"
    AFTERNOON = "pm"
    NIGHT = "night"
    AS_SAID = "24h"  # a zero-padded hour such as "07:30" is already on the 24-hour clock


_DOTTED_AM_PM = re.compile(r"(?<![^\W\d_])([ap])\.\s?m\b\.?")
_FIXED = {
    "полдень": time(12),
    "noon": time(12),
    "midday": time(12),
    "полночь": time(0),
    "midnight": time(0),
}
# Markers right after the time ("в 3 часа дня", "3 pm").
_MARKERS = {
    "утра": _Part.MORNING,
    "утром": _Part.MORNING,
    "am": _Part.MORNING,
    "дня": _Part.AFTERNOON,
    "днем": _Part.AFTERNOON,
    "вечера": _Part.AFTERNOON,
    "вечером": _Part.AFTERNOON,
    "pm": _Part.AFTERNOON,
    "ночи": _Part.NIGHT,
    "ночью": _Part.NIGHT,
}
_EN_MARKERS = {
    ("in", "the", "morning"): _Part.MORNING,
    ("in", "the", "afternoon"): _Part.AFTERNOON,
    ("in", "the", "evening"): _Part.AFTERNOON,
    ("at", "night"): _Part.NIGHT,
}
# Part-of-day words anywhere in the text ("вечером в 7", "tomorrow morning at 10").
_DAY_PARTS = {
    "утром": _Part.MORNING,
    "morning": _Part.MORNING,
    "днем": _Part.AFTERNOON,
    "вечером": _Part.AFTERNOON,
    "afternoon": _Part.AFTERNOON,
    "evening": _Part.AFTERNOON,
    "tonight": _Part.AFTERNOON,
    "ночью": _Part.NIGHT,
}
_GREETINGS = frozenset({"good", "добрый", "доброе"})
_HOUR_WORDS = frozenset({"час", "часа", "часов", "ч", "oclock"})
_MINUTE_WORDS = frozenset({"минут", "минуты", "минуту", "мин", "minutes", "minute"})
# Words before a number that make it a clock time: "в 3", "к пяти", "at 3".
_CUES = frozenset({"в", "во", "к", "ко", "около", "примерно", "ровно", "at", "around", "about"})
# Words before a number that make it a duration instead: "через 3 часа", "in 3 hours".
_NOT_CUES = frozenset({"через", "in", "за"})
# Words after a number that make it something else: "2 года", "3 days", "5 минут".
_NOT_TIME_AFTER = re.compile(
    r"(?:дн|ден|недел|месяц|год|лет|раз|числ|минут|сут|day|week|month|year|time|minute)\w*"
)
_ZERO_WORDS = frozenset({"ноль", "нуль", "oh", "o", "zero"})
_PAST = frozenset({"past", "after"})
_TO = frozenset({"to", "till"})
# Before "ten to five" these make it a range ("from ten to five"), not a time.
_RANGE_STARTS = frozenset({"from", "between", "с", "от"})
_AFTERNOON_WITHOUT_MARKER = range(1, 8)

_Match = tuple[time | None, int]


def extract_time(text: str, lang: str, *, asked: bool = False) -> time | None:
    """The last clock time in `text` that is not negated ("не в 3, а в 4"), or None.

    An hour without a marker (am/pm, утра/дня/вечера/ночи, "in the evening", or a part of
    day such as "вечером" elsewhere in the text) is read for a clinic open 8:00-20:00:
    1 to 7 mean the afternoon (+12), other hours stay as said, and so does a zero-padded
    hour ("07:30" is 7:30, as format_time writes it). A number counts as an hour
    only after "в"/"к"/"at"/"around", before "час"/"o'clock" or a marker, or when it is the
    whole utterance; when the caller was `asked` for a time, any number that is not a
    count of something ("maybe ten", "uh two i guess", "eleven would be great") is one.
    A bare "dd.mm" with mm <= 12 is a date, not a time, unless a cue such as "в"/"at"
    stands before it. British "half nine" is 9:30. `lang` is not needed: both languages
    are read.
    """
    return _TimeScan(text, asked=asked).last()


def format_time(value: time, lang: str) -> str:
    """ "15:00", "09:30" in Russian; "3 pm", "3:30 pm" in English."""
    if lang == "ru":
        return f"{value.hour:02d}:{value.minute:02d}"
    hour = value.hour % 12 or 12
    suffix = "am" if value.hour < 12 else "pm"
    if value.minute:
        return f"{hour}:{value.minute:02d} {suffix}"
    return f"{hour} {suffix}"


class _TimeScan:
    """One pass over a text; each finder tries a time form at a token index.

    A finder returns None when its form does not start there, else the time (None when
    the form is there but names no real time) and the index after the form.
    """

    def __init__(self, text: str, *, asked: bool = False) -> None:
        self.asked = asked
        self.tokens = _unstuttered(tokenize(_DOTTED_AM_PM.sub(r"\1m", normalize(text))))
        self.words = self.tokens.words
        self._gap = self.tokens.gap_after
        self.day_part = self._day_part_anywhere()

    def last(self) -> time | None:
        finders = (
            self._fixed,
            self._half_or_quarter_ru,
            self._without_ru,
            self._past_or_to_en,
            self._clock_digits,
            self._hour,
        )
        return last_found(self.words, finders)

    def _fixed(self, index: int) -> _Match | None:
        """ "в полдень", "at noon", "midnight"."""
        found = _FIXED.get(self.words[index])
        return None if found is None else (found, index + 1)

    def _half_or_quarter_ru(self, index: int) -> _Match | None:
        """ "в половине четвертого", "полпятого", "пол-пятого", "четверть пятого"."""
        word = self.words[index]
        if word.startswith("половин") or word == "пол":
            minute, hour, end = 30, ordinal_value(at(self.words, index + 1)), index + 2
        elif word == "четверть":
            minute, hour, end = 15, ordinal_value(at(self.words, index + 1)), index + 2
        elif word.startswith("пол") and len(word) > 3:
            minute, hour, end = 30, ordinal_value(word[3:]), index + 1
        else:
            return None
        if hour is None or not 1 <= hour <= 12:
            return None
        return self._finish(_hour_before(hour), minute, end)

    def _without_ru(self, index: int) -> _Match | None:
        """ "без четверти пять" -> 4:45, "без десяти три" -> 2:50 (then the clinic rule)."""
        if self.words[index] != "без":
            return None
        if at(self.words, index + 1) == "четверти":
            minutes, end = 15, index + 2
        else:
            parsed = self._number(index + 1)
            if parsed is None:
                return None
            minutes, end = parsed
            end += at(self.words, end) in _MINUTE_WORDS
        hour = (1, end + 1) if at(self.words, end) == "час" else self._number(end)
        if hour is None or not 1 <= hour[0] <= 12 or not 1 <= minutes <= 30:
            return None
        return self._finish(_hour_before(hour[0]), 60 - minutes, hour[1])

    def _past_or_to_en(self, index: int) -> _Match | None:
        """ "half past three", "quarter to five", "ten past three", "twenty to five"."""
        word = self.words[index]
        if at(self.words, index - 1) in _RANGE_STARTS:
            return None
        if word == "half" and at(self.words, index + 1) not in _PAST | _TO:
            # British "half nine": half past nine.
            hour = self._number(index + 1)
            if hour is None or not 1 <= hour[0] <= 12:
                return None
            return self._finish(hour[0], 30, hour[1])
        if word == "half":
            minutes, end = 30, index + 1
        elif word == "quarter" or (word == "a" and at(self.words, index + 1) == "quarter"):
            minutes, end = 15, index + 1 + (word == "a")
        elif word.isalpha() and (parsed := parse_cardinal(self.words, index)) is not None:
            minutes, end = parsed
            end += at(self.words, end) in _MINUTE_WORDS
        else:
            return None
        direction = at(self.words, end)
        hour = self._number(end + 1)
        if direction not in _PAST | _TO or hour is None or not 1 <= hour[0] <= 12:
            return None
        if not 1 <= minutes <= 30 or (word == "half" and direction in _TO):
            return None
        if direction in _PAST:
            return self._finish(hour[0], minutes, hour[1])
        return self._finish(_hour_before(hour[0]), 60 - minutes, hour[1])

    def _clock_digits(self, index: int) -> _Match | None:
        """ "15:00", "3:30 pm", "в 15.30", "15.30"; not "15.03" (a date) or "15.03.2027"."""
        hour_word, minute_word = self.words[index], at(self.words, index + 1)
        separator = self._gap(index)
        if separator not in {":", "."} or self._joined(index - 1):
            return None
        if not (hour_word.isdigit() and minute_word.isdigit()):
            return None
        if len(hour_word) > 2 or len(minute_word) != 2:
            return None
        end = index + 2
        seconds = at(self.words, end)
        if separator == ":" == self._gap(end - 1) and seconds.isdigit() and len(seconds) == 2:
            end += 1  # as in "15:00:00"
        if self._joined(end - 1):
            return None
        hour, minute = int(hour_word), int(minute_word)
        cued = at(self.words, index - 1) in _CUES
        if separator == "." and not cued and minute <= 12 and self._marker(end) is None:
            return None
        end += at(self.words, end) in _HOUR_WORDS
        return self._finish(hour, minute, end, _padded(hour_word))

    def _hour(self, index: int) -> _Match | None:
        """An hour, maybe with "час"/"o'clock", minutes and a marker: "в 3 часа дня",
        "в пятнадцать тридцать", "at 10 am", "в 15 часов 30 минут", "в час ночи"."""
        before = at(self.words, index - 1)
        if before in _NOT_CUES:
            return None
        if self.words[index] == "час" and before in _CUES:
            hour, end, has_hour_word = 1, index + 1, True
        else:
            parsed = self._number(index)
            if parsed is None or self._joined(index - 1) or self._joined(parsed[1] - 1):
                return None
            hour, number_end = parsed
            end = self._hour_word_end(number_end)
            has_hour_word = end > number_end
        if month_of(at(self.words, end)) is not None:
            return None
        minutes = self._minutes(end)
        minute = 0
        if minutes is not None and month_of(at(self.words, minutes[1])) is None:
            minute, end = minutes
        # "часа на три", "часов на пять": around three, around five.
        approximate = before == "на" and at(self.words, index - 2) in {"часа", "часов", "часам"}
        cued = before in _CUES or has_hour_word or approximate
        # "3 дня" alone is as likely three days as 3 pm: it takes a cue or "часа" to be a time.
        if self._marker(end) is not None and (cued or self.words[end] != "дня"):
            return self._finish(hour, minute, end)
        if _NOT_TIME_AFTER.fullmatch(at(self.words, end)):
            return None
        if cued or self.asked or (index == 0 and end == len(self.words)):
            return self._finish(hour, minute, end, _padded(self.words[index]))
        return None

    def _hour_word_end(self, index: int) -> int:
        if at(self.words, index) in _HOUR_WORDS:
            return index + 1
        if self.words[index : index + 2] == ["o", "clock"]:
            return index + 2
        return index

    def _minutes(self, index: int) -> tuple[int, int] | None:
        """Minutes after an hour: "30", "тридцать", "ноль пять", "oh five", "5 минут"."""
        word = at(self.words, index)
        if word.isdigit():
            gap = self._gap(index - 1)
            if len(word) != 2 or gap is None or not gap.isspace():
                return None
            value, end = int(word), index + 1
        elif word in _ZERO_WORDS:
            following = self._number(index + 1)
            if following is None or following[0] > 9:
                return None
            value, end = following
        else:
            parsed = parse_cardinal(self.words, index)
            if parsed is None:
                return None
            value, end = parsed
            if value < 10 and at(self.words, end) not in _MINUTE_WORDS:
                return None
        if value > 59:
            return None
        return value, end + (at(self.words, end) in _MINUTE_WORDS)

    def _number(self, index: int) -> tuple[int, int] | None:
        """A number of up to two digits, or number words."""
        word = at(self.words, index)
        if word.isdigit():
            value = digits_value(word)
            return None if value is None or len(word) > 2 else (value, index + 1)
        return parse_cardinal(self.words, index)

    def _marker(self, index: int) -> tuple[_Part, int] | None:
        """A part-of-day marker starting at `index`, and the index after it."""
        word = at(self.words, index)
        if word in _MARKERS:
            return _MARKERS[word], index + 1
        for phrase, part in _EN_MARKERS.items():
            if tuple(self.words[index : index + len(phrase)]) == phrase:
                return part, index + len(phrase)
        return None

    def _finish(self, hour: int, minute: int, end: int, part: _Part | None = None) -> _Match:
        """The time with the marker at `end`, else `part`, else the text's part of day."""
        marker = self._marker(end)
        if marker is not None:
            return _clock(hour, minute, marker[0]), marker[1]
        return _clock(hour, minute, part or self.day_part), end

    def _day_part_anywhere(self) -> _Part | None:
        """The single part of day the text names anywhere ("вечером"), ignoring greetings."""
        parts = {
            _DAY_PARTS[word]
            for index, word in enumerate(self.words)
            if word in _DAY_PARTS and at(self.words, index - 1) not in _GREETINGS
        }
        return parts.pop() if len(parts) == 1 else None

    def _joined(self, index: int) -> bool:
        """Whether digit tokens `index` and `index + 1` are glued into a longer number."""
        return (
            at(self.words, index).isdigit()
            and at(self.words, index + 1).isdigit()
            and self._gap(index) in {".", ":", "/", "-"}
        )


def _unstuttered(tokens: Tokens) -> Tokens:
    """The tokens with a pair of words said twice in a row said once: "four thirty four
    thirty pm" is 4:30 pm, not 4:34 and a stray "thirty"."""
    words, gaps = list(tokens.words), list(tokens.gaps)
    index = 0
    while index + 3 < len(words):
        if words[index : index + 2] == words[index + 2 : index + 4]:
            del words[index + 2 : index + 4]
            del gaps[index + 2 : index + 4]
        else:
            index += 1
    return Tokens(words, gaps)


def _padded(hour_word: str) -> _Part | None:
    return _Part.AS_SAID if len(hour_word) == 2 and hour_word.startswith("0") else None


def _hour_before(hour: int) -> int:
    """The hour before `hour` on a 12-hour dial: "половина первого" is 12:30."""
    return hour - 1 if hour > 1 else 12


def _clock(hour: int, minute: int, part: _Part | None) -> time | None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    if part is _Part.MORNING:
        if hour > 12:
            return None
        hour %= 12
    elif part is _Part.AFTERNOON:
        if hour == 0:
            return None
        if hour < 12:
            hour += 12
    elif part is _Part.NIGHT:
        if hour == 12:
            hour = 0
        elif 6 <= hour <= 11:
            hour += 12
    elif part is None and hour in _AFTERNOON_WITHOUT_MARKER:
        hour += 12
    return time(hour, minute)
