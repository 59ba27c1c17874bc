"""Phone numbers to E.164 and back to a read-back form."""

from __future__ import annotations

import random
import time

import pytest

from dm.extract import extract_phone, format_phone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+7 916 123-45-67", "+79161234567"),
        ("8 (916) 1234567", "+79161234567"),
        ("89161234567", "+79161234567"),
        ("7 916 123 45 67", "+79161234567"),
        ("916 123 45 67", "+79161234567"),
        ("+7(916)123-45-67", "+79161234567"),
        ("+79161234567", "+79161234567"),
        ("8-916-123-45-67", "+79161234567"),
        ("8 800 555 35 35", "+78005553535"),
        ("8 495 123 45 67", "+74951234567"),
        ("мой номер 8 916 123 45 67, запишите", "+79161234567"),
        ("Мой телефон: +7 (916) 123-45-67.", "+79161234567"),
        ("запишите на 15.03 в 15:00, телефон 8 916 123 45 67", "+79161234567"),
        ("89161234567, 15 марта", "+79161234567"),
        ("+7 916 123 45 67 89", "+79161234567"),
        (
            "восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь",
            "+79161234567",
        ),
        ("восемь девять один шесть один два три четыре пять шесть семь", "+79161234567"),
        ("плюс семь девятьсот шестнадцать 123 45 67", "+79161234567"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 123456", "+4930123456"),
        ("my number is +1 415 555 0123 thanks", "+14155550123"),
        ("plus one four one five five five five oh one two three", "+14155550123"),
    ],
)
def test_extract_phone_reads_numbers(text: str, expected: str) -> None:
    assert extract_phone(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀📞",
        "hello",
        "алло, здравствуйте",
        "15:00",
        "15.03.2027",
        "в 3 часа",
        "2 года",
        "123-45-67",
        "916 123 45 6",
        "+7 916 123 45 6",
        "+7 916 123 45 678",
        "8 016 123 45 67",
        "59161234567",
        "+0 123 456 789",
        "+44 20 79",
        "+1 415 555 01234",
        "15.03 в 15:00 на 2 часа",
        "12345678901234567890",
    ],
)
def test_extract_phone_refuses_what_is_not_a_phone(text: str) -> None:
    assert extract_phone(text) is None


@pytest.mark.parametrize(
    ("e164", "region", "expected"),
    [
        # The country's own grouping (libphonenumber's), nationally for the call's region.
        ("+79161234567", "", "+7 916 123-45-67"),
        ("+79161234567", "RU", "8 916 123-45-67"),
        ("+78005553535", "", "+7 800 555-35-35"),
        ("+14155550123", "", "+1 415-555-0123"),
        ("+14155550123", "US", "415 555-0123"),
        ("+447700900123", "GB", "07700 900123"),
        ("+442079460958", "", "+44 20 7946 0958"),
        ("+4930123456", "", "+49 30 123456"),
        ("+380441234567", "", "+380 44 123 4567"),
        ("89161234567", "", "89161234567"),
        ("", "", ""),
        ("+7 916", "", "+7 916"),
    ],
)
def test_format_phone_groups_digits(e164: str, region: str, expected: str) -> None:
    assert format_phone(e164, region) == expected


@pytest.mark.parametrize("e164", ["+79161234567", "+14155550123", "+442079460958", "+4930123456"])
def test_formatted_phone_reads_back_to_the_same_number(e164: str) -> None:
    assert extract_phone(format_phone(e164)) == e164


def _adversarial_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "0123456789 .:-/+(),'’_😀abcxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    noise = ["".join(rng.choice(alphabet) for _ in range(2000)) for _ in range(5)]
    units = ["1 ", "1-", "1.", "1:", "+", "(", "+1 ", "9 ", "- ", "восемь ", "плюс "]
    return noise + [unit * (2000 // len(unit)) for unit in units]


@pytest.mark.parametrize("text", _adversarial_texts())
def test_extract_phone_is_fast_on_long_hostile_input(text: str) -> None:
    started = time.perf_counter()
    found = extract_phone(text)
    assert found is None or (found.startswith("+") and found[1:].isdigit())
    assert time.perf_counter() - started < 1.0


def test_extract_phone_finds_a_number_after_long_noise() -> None:
    assert extract_phone("ну " * 600 + "8 916 123 45 67") == "+79161234567"
