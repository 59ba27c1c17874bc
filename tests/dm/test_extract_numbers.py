"""Whole numbers as digits or words."""

from __future__ import annotations

import random
import time

import pytest

from dm.extract import extract_integer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5),
        ("5 лет", 5),
        ("лет пять", 5),
        ("пять", 5),
        ("Пять лет", 5),
        ("двадцать пять", 25),
        ("сто двадцать", 120),
        ("сто двадцать пять", 125),
        ("двести", 200),
        ("тысяча", 1000),
        ("две тысячи двадцать семь", 2027),
        ("девять тысяч девятьсот девяносто девять", 9999),
        ("одиннадцать", 11),
        ("девятнадцать", 19),
        ("ноль", 0),
        ("0", 0),
        ("полтора", 1),
        ("полтора года", 1),
        ("пару лет", 2),
        ("около трех лет", 3),
        ("опыт у меня лет десять", 10),
        ("семь с половиной", 7),
        ("five", 5),
        ("twenty-five", 25),
        ("twenty five years", 25),
        ("a hundred and twenty", 120),
        ("one hundred", 100),
        ("three hundred and five", 305),
        ("a thousand", 1000),
        ("two thousand and five", 2005),
        ("one thousand two hundred and five", 1205),
        ("a dozen", 12),
        ("dozen", 12),
        ("a couple of years", 2),
        ("zero", 0),
        ("thirteen", 13),
        ("about 7 years", 7),
        ("5 или 6", 5),
        ("пять или 6", 5),
        ("мне 30 лет, опыт 5", 30),
        ("1,5 года", 1),
        ("года 3", 3),
        ("2027", 2027),
    ],
)
def test_extract_integer_reads_the_first_number(text: str, expected: int) -> None:
    assert extract_integer(text, "ru") == expected
    assert extract_integer(text, "en") == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "😀", "нет", "no experience", "не знаю", "много", "a", "hundreds?", "-"],
)
def test_extract_integer_without_a_number(text: str) -> None:
    assert extract_integer(text, "ru") is None


def test_dictated_digit_groups_stay_apart() -> None:
    assert extract_integer("восемь девятьсот шестнадцать", "ru") == 8
    assert extract_integer("двадцать тридцать", "ru") == 20


def test_an_overlong_digit_run_is_not_a_count() -> None:
    assert extract_integer("1" * 30 + " и 7", "ru") == 7
    assert extract_integer("9" * 5000, "ru") is None


def _adversarial_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "0123456789 .:-/+(),'’_😀abcxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    noise = ["".join(rng.choice(alphabet) for _ in range(2000)) for _ in range(5)]
    units = ["1", "двадцать ", "сто ", "a hundred and ", "тысяча ", "and ", "a ", "не "]
    return noise + [unit * (2000 // len(unit)) for unit in units]


@pytest.mark.parametrize("text", _adversarial_texts())
def test_extract_integer_is_fast_on_long_hostile_input(text: str) -> None:
    started = time.perf_counter()
    found = extract_integer(text, "ru")
    assert found is None or isinstance(found, int)
    assert time.perf_counter() - started < 1.0
