"""Calendar dates from what a caller said, relative to a given `today`."""

from __future__ import annotations

import re
from datetime import date, timedelta
from itertools import pairwise

from dm.extract.numbers import parse_cardinal, parse_ordinal
from dm.extract.text import at, last_found, normalize, tokenize

_MONTHS_RU = (
    *("января", "февраля", "марта", "апреля", "мая", "июня"),
    *("июля", "августа", "сентября", "октября", "ноября", "декабря"),
)
_MONTHS_EN = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
# One alternative per month (and weekday, Monday first); the group that matched is its number.
_MONTHS = re.compile(
    "|".join(
        f"({pattern})"
        for pattern in [
            r"январ\w{0,3}|jan|january",
            r"феврал\w{0,3}|feb|february",
            r"март\w{0,2}|mar|march",
            r"апрел\w{0,3}|apr|april",
            r"ма[йяею]|маем|may",
            r"июн\w{0,3}|jun|june",
            r"июл\w{0,3}|jul|july",
            r"август\w{0,2}|aug|august",
            r"сентябр\w{0,3}|sep|sept|september",
            r"октябр\w{0,3}|oct|october",
            r"ноябр\w{0,3}|nov|november",
            r"декабр\w{0,3}|dec|december",
        ]
    )
)
_WEEKDAYS = re.compile(
    "|".join(
        f"({pattern})"
        for pattern in [
            r"понедельник\w{0,2}|monday",
            r"вторник\w{0,2}|tuesday",
            r"сред[аеуы]|wednesday",
            r"четверг\w{0,2}|thursday",
            r"пятниц[аеуы]|friday",
            r"суббот[аеуы]|saturday",
            r"воскресень[еяю]|sunday",
        ]
    )
)
_DAYS_FROM_TODAY = {
    "позавчера": -2,
    "вчера": -1,
    "yesterday": -1,
    "сегодня": 0,
    "todays": 0,  # ASR writes "today's" so: "today's fine"
    "tomorrows": 1,
    "today": 0,
    "tonight": 0,
    "завтра": 1,
    "tomorrow": 1,
    "послезавтра": 2,
}
_IN = frozenset({"через", "in"})
_NEXT_WEEK = frozenset(
    {("next", "week"), ("следующей", "неделе"), ("следующей", "недели"), ("след", "неделе")}
)
# "a week from today", "three days from now".
_FROM_NOW = frozenset({("from", "today"), ("from", "now")})
_DAY_UNITS = frozenset({"день", "дня", "дней", "суток", "day", "days"})
_WEEK_UNITS = frozenset({"неделю", "недели", "недель", "week", "weeks"})
_MAX_DAYS_AHEAD = 366
_DAY_SUFFIXES = frozenset({"го", "ого", "е", "ое", "th", "st", "nd", "rd"})
# Endings of a Russian ordinal that names a day on its own: "пятнадцатого", "первое".
_DAY_ORDINAL_ENDINGS = ("ого", "ое", "ье", "ьего")
_NUMBER_OF_DAY = "числа"
# Before an ordinal these make it a clock time: "в половине пятого", "четверть пятого".
_TIME_WORDS_BEFORE = frozenset({"пол", "без", "четверть", "четверти", "начале"})
# A bare "dd.mm" right after one of these is a clock time ("в 10.05"), not a date.
_TIME_CUES = frozenset({"в", "во", "к", "ко", "at", "by", "around"})
_NUMERIC_SEPARATORS = frozenset({".", "/", ":", "-"})

_Match = tuple[date | None, int]


def extract_date(text: str, lang: str, today: date) -> date | None:
    """The last date named in `text` that is not negated ("не завтра, а ..."), or None.

    Relative days and weekdays count from `today`; a weekday is the nearest one strictly
    after today ("next Monday" included). Day and month without a year fall this year, or
    next year if already past; a bare day of month ("15-го", "the 15th") this month, or next
    month if past. `lang` only orders slashed numbers: "3/15" is month/day in English,
    day/month otherwise. A date that does not exist ("31 февраля") is skipped, not repaired.
    """
    return _DateScan(text, lang, today).last()


def format_date(value: date, lang: str) -> str:
    """Day and month for speech: "15 марта" in Russian, "March 15" in English."""
    if lang == "ru":
        return f"{value.day} {_MONTHS_RU[value.month - 1]}"
    return f"{_MONTHS_EN[value.month - 1]} {value.day}"


class _DateScan:
    """One pass over a text; each finder tries a date form at a token index.

    A finder returns None when its form does not start there, else the date (None when
    the form is there but names no real date) and the index after the form.
    """

    def __init__(self, text: str, lang: str, today: date) -> None:
        self.tokens = tokenize(normalize(text))
        self.words = self.tokens.words
        self._gap = self.tokens.gap_after
        self.lang = lang
        self.today = today

    def last(self) -> date | None:
        finders = (
            self._relative_day,
            self._days_later,
            self._days_from_now,
            self._weekday,
            self._iso,
            self._numeric,
            self._day_then_month,
            self._month_then_day,
            self._bare_day,
        )
        return last_found(self.words, finders)

    def _relative_day(self, index: int) -> _Match | None:
        word = self.words[index]
        if word in _DAYS_FROM_TODAY:
            return self.today + timedelta(days=_DAYS_FROM_TODAY[word]), index + 1
        if self.words[index : index + 3] == ["day", "after", "tomorrow"]:
            return self.today + timedelta(days=2), index + 3
        return None

    def _days_from_now(self, index: int) -> _Match | None:
        """ "a week from today", "three days from now"."""
        counted = self._count(index)
        if counted is None or at(self.words, counted[1]) not in _DAY_UNITS | _WEEK_UNITS:
            return None
        count, unit_at = counted
        if (at(self.words, unit_at + 1), at(self.words, unit_at + 2)) not in _FROM_NOW:
            return None
        days = count * (7 if at(self.words, unit_at) in _WEEK_UNITS else 1)
        end = unit_at + 3
        if days > _MAX_DAYS_AHEAD:
            return None, end
        return self.today + timedelta(days=days), end

    def _days_later(self, index: int) -> _Match | None:
        """ "через 3 дня", "через неделю", "in two weeks", "in a week"."""
        if self.words[index] not in _IN:
            return None
        count, end = self._count(index + 1) or (None, index + 1)
        unit = at(self.words, end)
        if unit in _WEEK_UNITS:
            days = 7 * (1 if count is None else count)
        elif unit in _DAY_UNITS and count is not None:
            days = count
        else:
            return None
        if days > _MAX_DAYS_AHEAD:
            return None, end + 1
        return self.today + timedelta(days=days), end + 1

    def _count(self, index: int) -> tuple[int, int] | None:
        word = at(self.words, index)
        if word in {"a", "an"}:
            return 1, index + 1
        if word.isdigit():
            return (int(word) if len(word) <= 4 else _MAX_DAYS_AHEAD + 1), index + 1
        return parse_cardinal(self.words, index)

    def _weekday(self, index: int) -> _Match | None:
        """The nearest such weekday after today ("friday", "next friday", "в пятницу"), or
        that weekday of next week ("friday next week", "в пятницу на следующей неделе")."""
        weekday = _WEEKDAYS.fullmatch(self.words[index])
        if weekday is None or weekday.lastindex is None:
            return None
        day = weekday.lastindex - 1
        if any(self._day_number(i) for i in range(max(0, index - 4), index)):
            # "the twenty third, that's a tuesday right": the day number says it.
            return None, index + 1
        dated = self._weekday_with_day(day, index + 1)
        if dated is not None:
            return dated
        if self._next_week_near(index):
            monday = self.today + timedelta(days=7 - self.today.weekday())
            return monday + timedelta(days=day), index + 1
        ahead = (day - self.today.weekday()) % 7 or 7
        return self.today + timedelta(days=ahead), index + 1

    def _weekday_with_day(self, weekday: int, index: int) -> _Match | None:
        """ "monday the eighth", "в понедельник, восьмого": the nearest date with that day
        number that falls on that weekday, past or not (a past one is refused later)."""
        start = index + 1 if at(self.words, index) == "the" else index
        number = self._day_number(start)
        if number is None or not number[2]:
            return None
        value, end, _ = number
        candidates = [
            found
            for months in (-1, 0, 1, 2)
            if (found := _make_date(*_month_shift(self.today, months), value)) is not None
            and found.weekday() == weekday
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda found: abs((found - self.today).days)), end

    def _next_week_near(self, index: int) -> bool:
        """Whether "next week" is said within a few words of the weekday at `index`."""
        window = self.words[max(0, index - 4) : index + 5]
        pairs = set(pairwise(window))
        return bool(pairs & _NEXT_WEEK)

    def _iso(self, index: int) -> _Match | None:
        """ "2027-03-15"."""
        parts = self.words[index : index + 3]
        if len(parts) < 3 or not all(part.isdigit() for part in parts):
            return None
        if len(parts[0]) != 4 or len(parts[1]) > 2 or len(parts[2]) > 2:
            return None
        if not self._gap(index) == self._gap(index + 1) == "-" or self._glued(index - 1):
            return None
        if self._glued(index + 2):
            return None
        return _make_date(int(parts[0]), int(parts[1]), int(parts[2])), index + 3

    def _numeric(self, index: int) -> _Match | None:
        """ "15.03", "15.03.2027", "15/03", "3/15" (en), "15-03-2027"; not "в 10.05"."""
        words = self.words
        first, second = words[index], at(words, index + 1)
        separator = self._gap(index)
        if separator not in {".", "/", "-"} or self._glued(index - 1):
            return None
        if not (first.isdigit() and second.isdigit() and len(first) <= 2 >= len(second)):
            return None
        year_word = at(words, index + 2)
        has_year = self._gap(index + 1) == separator and year_word.isdigit()
        if has_year and len(year_word) not in (2, 4):
            return None
        if separator == "-" and not (has_year and len(year_word) == 4):
            return None
        end = index + 3 if has_year else index + 2
        if self._glued(end - 1):
            return None
        if not has_year and separator == "." and at(words, index - 1) in _TIME_CUES:
            return None
        orders = [(int(second), int(first))]
        if separator == "/" and self.lang == "en":
            orders.insert(0, (int(first), int(second)))
        for month, day in orders:
            if has_year:
                year = int(year_word) + (2000 if len(year_word) == 2 else 0)
                found = _make_date(year, month, day)
            else:
                found = _next_month_day(self.today, month, day)
            if found is not None:
                return found, end
        return None, end

    def _day_then_month(self, index: int) -> _Match | None:
        """ "15 марта", "пятнадцатого марта", "the 15th of March", "15 March 2027"."""
        day = self._day_number(index)
        if day is None:
            return None
        end = day[1]
        while at(self.words, end) in {"of", "the"} and end - day[1] < 2:
            end += 1
        month = month_of(at(self.words, end))
        if month is None:
            return None
        return self._with_year(month, day[0], end + 1)

    def _month_then_day(self, index: int) -> _Match | None:
        """ "March 15", "March 15th", "March the fifteenth", "марта 15"."""
        month = month_of(self.words[index])
        if month is None:
            return None
        start = index + 2 if at(self.words, index + 1) == "the" else index + 1
        day = self._day_number(start)
        if day is None:
            return None
        return self._with_year(month, day[0], day[1])

    def _with_year(self, month: int, day: int, end: int) -> _Match:
        year_word = at(self.words, end)
        if len(year_word) == 4 and year_word.isdigit() and year_word.startswith("20"):
            end += 2 if at(self.words, end + 1) in {"года", "год", "г"} else 1
            return _make_date(int(year_word), month, day), end
        return _next_month_day(self.today, month, day), end

    def _bare_day(self, index: int) -> _Match | None:
        """A day of month alone: "15-го", "15 числа", "пятнадцатого", "the 15th"."""
        day = self._day_number(index)
        if day is None:
            return None
        value, end, marked = day
        counted = at(self.words, end) == _NUMBER_OF_DAY
        last = self.words[end - 1]
        is_word = not last.isdigit() and last not in _DAY_SUFFIXES
        english_ordinal = at(self.words, index - 1) in {"the", "on"} and last.endswith(
            ("th", "st", "nd", "rd")
        )
        if is_word and not (last.endswith(_DAY_ORDINAL_ENDINGS) or counted or english_ordinal):
            return None
        if not (marked or counted):
            return None
        before = at(self.words, index - 1)
        if before in _TIME_WORDS_BEFORE or before.startswith("половин"):
            return None
        if at(self.words, end).startswith("час"):
            return None
        return _next_day_of_month(self.today, value), end + 1 if counted else end

    def _day_number(self, index: int) -> tuple[int, int, bool] | None:
        """A day of month at `index`: its value, the index after it, and whether it was
        marked as an ordinal ("15-го", "15th", "пятнадцатого")."""
        word = at(self.words, index)
        if word.isdigit():
            if len(word) > 2 or self._glued(index - 1):
                return None
            marked = at(self.words, index + 1) in _DAY_SUFFIXES and self._gap(index) in {"", "-"}
            return _day_in_range(int(word), index + 1 + marked, marked)
        ordinal = parse_ordinal(self.words, index)
        if ordinal is not None:
            return _day_in_range(ordinal[0], ordinal[1], True)
        cardinal = parse_cardinal(self.words, index)
        if cardinal is not None:
            return _day_in_range(cardinal[0], cardinal[1], False)
        return None

    def _glued(self, index: int) -> bool:
        """Whether digit tokens `index` and `index + 1` are parts of one numeric form."""
        return (
            at(self.words, index).isdigit()
            and at(self.words, index + 1).isdigit()
            and self._gap(index) in _NUMERIC_SEPARATORS
        )


def month_of(word: str) -> int | None:
    """The month a normalised word names ("марта", "march", "mar"), or None."""
    month = _MONTHS.fullmatch(word)
    return None if month is None else month.lastindex


def _day_in_range(day: int, end: int, marked: bool) -> tuple[int, int, bool] | None:
    return (day, end, marked) if 1 <= day <= 31 else None


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_month_day(today: date, month: int, day: int) -> date | None:
    """This year's `day` of `month`, or next year's if it passed more than a month ago.

    A day of this month or last that has passed stays in the past ("1 марта" said on
    10 March is a mistake to point out, not next year); "10 January" said in December
    is next year's.
    """
    found = _make_date(today.year, month, day)
    if found is None:
        return None
    if (today.year * 12 + today.month) - (found.year * 12 + found.month) > 1:
        found = _make_date(today.year + 1, month, day)
    return found


def _month_shift(today: date, months: int) -> tuple[int, int]:
    """(year, month) `months` after today's month."""
    index = today.year * 12 + today.month - 1 + months
    return index // 12, index % 12 + 1


def _next_day_of_month(today: date, day: int) -> date | None:
    """`day` of this month, or of next month if it has passed or this month lacks it."""
    found = _make_date(today.year, today.month, day)
    if found is None or found < today:
        year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        found = _make_date(year, month, day)
    return found
