"""Dates relative to a fixed `today`: Wednesday 10 March 2027."""

from __future__ import annotations

import random
import time
from datetime import date

import pytest

from dm.extract import extract_date, format_date

TODAY = date(2027, 3, 10)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("сегодня", date(2027, 3, 10)),
        ("завтра", date(2027, 3, 11)),
        ("Завтра, пожалуйста", date(2027, 3, 11)),
        ("послезавтра", date(2027, 3, 12)),
        ("в понедельник", date(2027, 3, 15)),
        ("во вторник", date(2027, 3, 16)),
        ("в среду", date(2027, 3, 17)),
        ("в следующую среду", date(2027, 3, 17)),
        ("в четверг", date(2027, 3, 11)),
        ("в пятницу", date(2027, 3, 12)),
        ("в субботу", date(2027, 3, 13)),
        ("в воскресенье", date(2027, 3, 14)),
        ("15 марта", date(2027, 3, 15)),
        ("15-го марта", date(2027, 3, 15)),
        ("пятнадцатого марта", date(2027, 3, 15)),
        ("пятнадцатое марта", date(2027, 3, 15)),
        ("пятнадцать марта", date(2027, 3, 15)),
        ("первого мая", date(2027, 5, 1)),
        ("1 мая", date(2027, 5, 1)),
        ("двадцать третьего февраля", date(2027, 2, 23)),  # last month: past, not next year
        ("двадцать третьего января", date(2028, 1, 23)),
        ("тридцать первого декабря", date(2027, 12, 31)),
        ("15.03", date(2027, 3, 15)),
        ("15.03.2027", date(2027, 3, 15)),
        ("15.03.27", date(2027, 3, 15)),
        ("15/03", date(2027, 3, 15)),
        ("15-03-2027", date(2027, 3, 15)),
        ("через 3 дня", date(2027, 3, 13)),
        ("через три дня", date(2027, 3, 13)),
        ("через пару дней", date(2027, 3, 12)),
        ("через неделю", date(2027, 3, 17)),
        ("через две недели", date(2027, 3, 24)),
        ("2027-03-15", date(2027, 3, 15)),
        ("15 марта 2028 года", date(2028, 3, 15)),
        ("15-го", date(2027, 3, 15)),
        ("пятнадцатого", date(2027, 3, 15)),
        ("15 числа", date(2027, 3, 15)),
        ("на 15 марта в 15:00", date(2027, 3, 15)),
        ("Всё-таки записывайте на 15-е марта", date(2027, 3, 15)),
        ("ЗАВТРА", date(2027, 3, 11)),
        ("в субботу, 13 марта", date(2027, 3, 13)),
    ],
)
def test_extract_date_russian(text: str, expected: date) -> None:
    assert extract_date(text, "ru", TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2027, 3, 10)),
        ("tomorrow", date(2027, 3, 11)),
        ("the day after tomorrow", date(2027, 3, 12)),
        ("on Monday", date(2027, 3, 15)),
        ("next Monday", date(2027, 3, 15)),
        ("this friday", date(2027, 3, 12)),
        ("March 15", date(2027, 3, 15)),
        ("march 15th", date(2027, 3, 15)),
        ("March the 15th", date(2027, 3, 15)),
        ("15 March", date(2027, 3, 15)),
        ("the 15th of March", date(2027, 3, 15)),
        ("the fifteenth of march", date(2027, 3, 15)),
        ("March twenty first", date(2027, 3, 21)),
        ("March 15, 2028", date(2028, 3, 15)),
        ("Mar 15", date(2027, 3, 15)),
        ("3/15", date(2027, 3, 15)),
        ("15/3", date(2027, 3, 15)),
        ("3/15/2028", date(2028, 3, 15)),
        ("in 3 days", date(2027, 3, 13)),
        ("in three days", date(2027, 3, 13)),
        ("in a week", date(2027, 3, 17)),
        ("in two weeks", date(2027, 3, 24)),
        ("the 15th", date(2027, 3, 15)),
        ("can I come tomorrow at 3 pm", date(2027, 3, 11)),
        ("May 1st please", date(2027, 5, 1)),
    ],
)
def test_extract_date_english(text: str, expected: date) -> None:
    assert extract_date(text, "en", TODAY) == expected


def test_russian_words_are_read_when_lang_is_english_and_back() -> None:
    assert extract_date("завтра", "en", TODAY) == date(2027, 3, 11)
    assert extract_date("tomorrow", "ru", TODAY) == date(2027, 3, 11)


def test_slashed_numbers_are_day_month_in_russian() -> None:
    assert extract_date("3/15", "ru", TODAY) is None
    assert extract_date("4/5", "ru", TODAY) == date(2027, 5, 4)
    assert extract_date("4/5", "en", TODAY) == date(2027, 4, 5)


@pytest.mark.parametrize(
    ("today", "text", "expected"),
    [
        # A weekday is the nearest one strictly after today: on a Wednesday, next week's.
        (date(2027, 3, 10), "в среду", date(2027, 3, 17)),
        (date(2027, 3, 10), "on Wednesday", date(2027, 3, 17)),
        (date(2027, 3, 14), "в понедельник", date(2027, 3, 15)),
        # Day and month: this year, next year once more than a month past; a day of this
        # month or last that has passed stays in the past, for the caller to hear so.
        (date(2027, 12, 30), "5 января", date(2028, 1, 5)),
        (date(2027, 12, 30), "30 декабря", date(2027, 12, 30)),
        (date(2027, 12, 30), "29 декабря", date(2027, 12, 29)),
        (date(2027, 12, 30), "3 ноября", date(2027, 11, 3)),
        (date(2027, 12, 30), "3 октября", date(2028, 10, 3)),
        (date(2027, 12, 30), "05.01", date(2028, 1, 5)),
        (date(2027, 12, 30), "January 5", date(2028, 1, 5)),
        # A bare day of month: this month, else next month, across the year end.
        (date(2027, 12, 20), "15-го", date(2028, 1, 15)),
        (date(2027, 3, 20), "20-го", date(2027, 3, 20)),
        (date(2027, 4, 10), "31-го", date(2027, 5, 31)),
        # Relative days cross months and years.
        (date(2027, 12, 31), "завтра", date(2028, 1, 1)),
        (date(2027, 2, 27), "через 3 дня", date(2027, 3, 2)),
        # 29 February exists only in leap years.
        (date(2028, 1, 10), "29 февраля", date(2028, 2, 29)),
        (date(2027, 1, 10), "29 февраля", None),
    ],
)
def test_extract_date_edges(today: date, text: str, expected: date | None) -> None:
    assert extract_date(text, "ru", today) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀",
        "hello",
        "Мария",
        "31 февраля",
        "31-го февраля",
        "30 февраля",
        "31.04",
        "32 марта",
        "15.13",
        "2027-02-30",
        "2027-13-01",
        "в 3 часа",
        "в 10.05",
        "15:00",
        "15.30",
        "в половине четвертого",
        "полпятого",
        "8 916 123-45-67",
        "+7 916 123 45 67",
        "2 года",
        "пять",
        "first of all",
        "may I come at 5",
        "in 3 hours",
        "через 3 часа",
        "через 99999999999999999999 дней",
        "через 1000 недель",
        "через день",
    ],
)
def test_extract_date_refuses_non_dates(text: str) -> None:
    assert extract_date(text, "ru", TODAY) is None
    assert extract_date(text, "en", TODAY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("не завтра, а послезавтра", date(2027, 3, 12)),
        ("не в понедельник, а во вторник", date(2027, 3, 16)),
        ("not on Monday, on Tuesday", date(2027, 3, 16)),
        ("не 15 марта, а 16-го", date(2027, 3, 16)),
    ],
)
def test_a_negated_date_gives_way_to_the_next(text: str, expected: date) -> None:
    assert extract_date(text, "ru", TODAY) == expected


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [
        (date(2027, 3, 15), "ru", "15 марта"),
        (date(2027, 5, 1), "ru", "1 мая"),
        (date(2027, 12, 31), "ru", "31 декабря"),
        (date(2027, 3, 15), "en", "March 15"),
        (date(2027, 1, 1), "en", "January 1"),
    ],
)
def test_format_date(value: date, lang: str, expected: str) -> None:
    assert format_date(value, lang) == expected


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("month", range(1, 13))
def test_formatted_date_reads_back(lang: str, month: int) -> None:
    value = date(2027, month, 28)
    assert extract_date(format_date(value, lang), lang, date(2027, 1, 1)) == value


def _adversarial_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "0123456789 .:-/+(),'’_😀abcxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    noise = ["".join(rng.choice(alphabet) for _ in range(2000)) for _ in range(5)]
    units = ["1 ", "1.", "1/", "1-", "15.03 ", "в 1", "не ", "через ", "двадцать ", "марта 1 "]
    return noise + [unit * (2000 // len(unit)) for unit in units]


@pytest.mark.parametrize("text", _adversarial_texts())
def test_extract_date_is_fast_on_long_hostile_input(text: str) -> None:
    started = time.perf_counter()
    found = extract_date(text, "ru", TODAY)
    assert found is None or isinstance(found, date)
    assert time.perf_counter() - started < 1.0


def test_extract_date_finds_a_date_after_long_noise() -> None:
    assert extract_date("ну " * 600 + "завтра", "ru", TODAY) == date(2027, 3, 11)
