"""Clock times, read for a clinic open 8:00-20:00."""

from __future__ import annotations

import random
import time as clock
from datetime import time

import pytest

from dm.extract import extract_time, format_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("в 15:00", time(15, 0)),
        ("15:30", time(15, 30)),
        ("в 15.30", time(15, 30)),
        ("15.30", time(15, 30)),
        ("в 10.05", time(10, 5)),
        ("в 15.03", time(15, 3)),
        ("в 3 часа дня", time(15, 0)),
        ("в три часа дня", time(15, 0)),
        ("в десять утра", time(10, 0)),
        ("в 9 вечера", time(21, 0)),
        ("в полдень", time(12, 0)),
        ("в полночь", time(0, 0)),
        ("в половине четвертого", time(15, 30)),
        ("в половине девятого", time(8, 30)),
        ("в половине первого", time(12, 30)),
        ("полпятого", time(16, 30)),
        ("в пол-пятого", time(16, 30)),
        ("четверть пятого", time(16, 15)),
        ("без четверти пять", time(16, 45)),
        ("без десяти три", time(14, 50)),
        ("без пятнадцати девять", time(8, 45)),
        ("в 15 часов", time(15, 0)),
        ("в 15 часов 30 минут", time(15, 30)),
        ("в 3 часа 30 минут", time(15, 30)),
        ("в пятнадцать тридцать", time(15, 30)),
        ("в десять сорок пять", time(10, 45)),
        ("в десять ноль пять", time(10, 5)),
        ("в пятнадцать ноль ноль", time(15, 0)),
        ("в 10 30", time(10, 30)),
        ("к пяти", time(17, 0)),
        ("около десяти", time(10, 0)),
        ("в час", time(13, 0)),
        ("в час ночи", time(1, 0)),
        ("в 12 ночи", time(0, 0)),
        ("в 11 ночи", time(23, 0)),
        ("в 3 ночи", time(3, 0)),
        ("в 3 дня", time(15, 0)),
        ("в 7 утра", time(7, 0)),
        ("вечером в 7", time(19, 0)),
        ("утром в 7", time(7, 0)),
        ("завтра в 9 утра", time(9, 0)),
        ("15 марта в 3", time(15, 0)),
        ("15 марта в 10:30", time(10, 30)),
        ("через 3 дня в 10", time(10, 0)),
        ("не в 3, а в 4", time(16, 0)),
        ("Давайте в 11", time(11, 0)),
    ],
)
def test_extract_time_russian(text: str, expected: time) -> None:
    assert extract_time(text, "ru") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 3 pm", time(15, 0)),
        ("3pm", time(15, 0)),
        ("3 P.M.", time(15, 0)),
        ("3:30 pm", time(15, 30)),
        ("at noon", time(12, 0)),
        ("at midnight", time(0, 0)),
        ("at 10 am", time(10, 0)),
        ("at 10 a.m.", time(10, 0)),
        ("12 am", time(0, 0)),
        ("12 pm", time(12, 0)),
        ("12:30 am", time(0, 30)),
        ("half past three", time(15, 30)),
        ("half past nine", time(9, 30)),
        ("quarter past three", time(15, 15)),
        ("a quarter to five", time(16, 45)),
        ("quarter to five", time(16, 45)),
        ("ten past three", time(15, 10)),
        ("twenty to five", time(16, 40)),
        ("at 15:00", time(15, 0)),
        ("at three", time(15, 0)),
        ("at seven o'clock", time(19, 0)),
        ("at 9 o'clock", time(9, 0)),
        ("three thirty", time(15, 30)),
        ("at three oh five", time(15, 5)),
        ("at 7 in the morning", time(7, 0)),
        ("at 3 in the afternoon", time(15, 0)),
        ("at 8 in the evening", time(20, 0)),
        ("tomorrow morning at 7", time(7, 0)),
        ("good morning, could I come at 5", time(17, 0)),
        ("not at 3, at 4", time(16, 0)),
        ("15:00:00", time(15, 0)),
    ],
)
def test_extract_time_english(text: str, expected: time) -> None:
    assert extract_time(text, "en") == expected


@pytest.mark.parametrize(
    ("hour", "expected"),
    {0: 0, 1: 13, 2: 14, 5: 17, 7: 19, 8: 8, 9: 9, 11: 11, 12: 12, 13: 13, 19: 19, 23: 23}.items(),
)
def test_an_hour_without_a_marker_is_read_for_clinic_hours(hour: int, expected: int) -> None:
    assert extract_time(f"в {hour}", "ru") == time(expected)
    assert extract_time(f"at {hour}", "en") == time(expected)
    assert extract_time(f"{hour}:00", "en") == time(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("07:30", time(7, 30)), ("в 07:00", time(7)), ("01:00", time(1)), ("в 07", time(7))],
)
def test_a_zero_padded_hour_is_already_on_the_24_hour_clock(text: str, expected: time) -> None:
    assert extract_time(text, "ru") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15", time(15)),
        ("3", time(15)),
        ("пятнадцать", time(15)),
        ("три", time(15)),
        ("три тридцать", time(15, 30)),
        ("15 30", time(15, 30)),
        ("десять", time(10)),
    ],
)
def test_a_number_alone_is_an_hour(text: str, expected: time) -> None:
    assert extract_time(text, "ru") == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "😀",
        "hello",
        "да",
        "15.03",
        "10.05",
        "15.03.2027",
        "15/03",
        "2027-03-15",
        "8 916 123-45-67",
        "+7 916 123 45 67",
        "89161234567",
        "2 года",
        "мне 25 лет",
        "5 лет",
        "3 дня",
        "через 3 дня",
        "через 3 часа",
        "in 3 hours",
        "за 2 часа",
        "в 2027 году",
        "15 марта",
        "в 25",
        "в 24:00",
        "25:00",
        "15:75",
        "в 15 утра",
        "from ten to twelve",
        "раз два три",
        "один два",
    ],
)
def test_extract_time_refuses_non_times(text: str) -> None:
    assert extract_time(text, "ru") is None
    assert extract_time(text, "en") is None


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [
        (time(15, 0), "ru", "15:00"),
        (time(9, 5), "ru", "09:05"),
        (time(0, 0), "ru", "00:00"),
        (time(15, 0), "en", "3 pm"),
        (time(15, 30), "en", "3:30 pm"),
        (time(9, 0), "en", "9 am"),
        (time(12, 0), "en", "12 pm"),
        (time(0, 0), "en", "12 am"),
        (time(0, 30), "en", "12:30 am"),
    ],
)
def test_format_time(value: time, lang: str, expected: str) -> None:
    assert format_time(value, lang) == expected


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("hour", range(24))
def test_formatted_time_reads_back(lang: str, hour: int) -> None:
    for minute in (0, 5, 30, 45):
        value = time(hour, minute)
        assert extract_time(format_time(value, lang), lang) == value


def _adversarial_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "0123456789 .:-/+(),'’_😀abcxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    noise = ["".join(rng.choice(alphabet) for _ in range(2000)) for _ in range(5)]
    units = ["1 ", "1:", "1.", "в 1", "не ", "без ", "пол", "half past ", "ten to ", "a.m."]
    return noise + [unit * (2000 // len(unit)) for unit in units]


@pytest.mark.parametrize("text", _adversarial_texts())
def test_extract_time_is_fast_on_long_hostile_input(text: str) -> None:
    started = clock.perf_counter()
    found = extract_time(text, "ru")
    assert found is None or isinstance(found, time)
    assert clock.perf_counter() - started < 1.0


def test_extract_time_finds_a_time_after_long_noise() -> None:
    assert extract_time("ну " * 600 + "в 15:00", "ru") == time(15)
