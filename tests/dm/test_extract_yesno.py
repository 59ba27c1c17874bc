"""Yes or no from an answer to a read-back."""

from __future__ import annotations

import random
import time

import pytest

from dm.extract import extract_yes_no

YES_RU = [
    "да",
    "Да!",
    "да-да",
    "верно",
    "правильно",
    "всё так",
    "все так",
    "подтверждаю",
    "конечно",
    "ага",
    "угу",
    "именно",
    "именно так",
    "согласен",
    "согласна",
    "да, все верно",
    "Да, всё правильно, спасибо",
    "хорошо",
    "ладно",
    "точно",
    "так точно",
]
NO_RU = [
    "нет",
    "Нет.",
    "неверно",
    "не верно",
    "неправильно",
    "не правильно",
    "не так",
    "ошибка",
    "вы ошиблись",
    "не совсем",
    "не совсем верно",
    "давайте исправим",
    "надо исправить телефон",
    "нужно поменять дату",
    "не согласен",
    "не тот телефон",
    "да нет, телефон другой",
    "да, но телефон неверный",
    "верно, только дата неправильная",
    "конечно нет",
]
YES_EN = [
    "yes",
    "Yes.",
    "yeah",
    "yep",
    "correct",
    "right",
    "that's right",
    "that is correct",
    "sure",
    "confirm",
    "I confirm",
    "exactly",
    "yes, that's all correct",
    "sure, no problem",
    "ok",
    "true",
]
NO_EN = [
    "no",
    "No!",
    "nope",
    "wrong",
    "incorrect",
    "not right",
    "that's not right",
    "that isn't correct",
    "not quite",
    "not quite right",
    "of course not",
    "yes, but the phone is wrong",
    "I need to change the date",
    "false",
]
NEITHER = [
    "",
    "   ",
    "😀",
    "Мария",
    "в 3 часа",
    "8 916 123 45 67",
    "что?",
    "повторите, пожалуйста",
    "what time is it",
    "hello",
    "not sure",
    "не знаю",
]


@pytest.mark.parametrize("text", YES_RU + YES_EN)
def test_confirmations_are_yes(text: str) -> None:
    assert extract_yes_no(text, "ru") is True
    assert extract_yes_no(text, "en") is True


@pytest.mark.parametrize("text", NO_RU + NO_EN)
def test_denials_are_no(text: str) -> None:
    assert extract_yes_no(text, "ru") is False
    assert extract_yes_no(text, "en") is False


@pytest.mark.parametrize("text", NEITHER)
def test_unrelated_text_is_neither(text: str) -> None:
    assert extract_yes_no(text, "ru") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Among words about the details, the last one wins.
        ("нет-нет, все правильно", True),
        ("нет, всё верно", True),
        ("no, no, that's right", True),
        ("верно, только дата неправильная", False),
        ("неправильно, а теперь верно", True),
        # With particles only, a no wins over a yes.
        ("да нет", False),
        ("нет, да", False),
        ("yes no", False),
        # A detail word outweighs any particle.
        ("да, неверно", False),
        ("нет, правильно", True),
    ],
)
def test_conflicts_follow_the_documented_rules(text: str, expected: bool) -> None:
    assert extract_yes_no(text, "ru") is expected


def _adversarial_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "0123456789 .:-/+(),'’_😀abcxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    noise = ["".join(rng.choice(alphabet) for _ in range(2000)) for _ in range(5)]
    units = ["да ", "нет ", "не ", "не совсем ", "of course ", "t ", "yes no "]
    return noise + [unit * (2000 // len(unit)) for unit in units]


@pytest.mark.parametrize("text", _adversarial_texts())
def test_extract_yes_no_is_fast_on_long_hostile_input(text: str) -> None:
    started = time.perf_counter()
    found = extract_yes_no(text, "ru")
    assert found is None or isinstance(found, bool)
    assert time.perf_counter() - started < 1.0
