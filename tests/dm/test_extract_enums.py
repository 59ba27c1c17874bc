"""Enum values from word stems, with the booking flow's own synonym tables."""

from __future__ import annotations

import random
import time

import pytest

from dm.extract import match_enum

EXAMS = {
    "mri_brain": ["голов", "мозг", "head", "brain"],
    "mri_spine": ["позвоноч", "спин", "поясниц", "шейн", "шеи", "spine", "back", "neck", "lumbar"],
    "mri_knee": ["колен", "knee"],
    "mri_abdomen": ["брюшн", "живот", "печен", "abdomen", "abdominal", "belly", "liver"],
    "mri_pelvis": ["таз", "pelvis", "pelvic"],
}
CHANGES = {
    "name": ["имя", "зовут", "фамили", "name"],
    "phone": ["телефон", "номер", "phone", "number"],
    "exam": ["исследован", "обследован", "мрт", "exam", "scan", "mri"],
    "date": ["дат", "день", "число", "date", "day"],
    "time": ["время", "час", "time", "hour", "o'clock"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("МРТ коленного сустава", "mri_knee"),
        ("колено", "mri_knee"),
        ("КОЛЕНИ", "mri_knee"),
        ("головного мозга", "mri_brain"),
        ("мне голову посмотреть", "mri_brain"),
        ("позвоночник, поясничный отдел", "mri_spine"),
        ("спина болит", "mri_spine"),
        ("шейный отдел", "mri_spine"),
        ("брюшной полости", "mri_abdomen"),
        ("печень", "mri_abdomen"),
        ("органов малого таза", "mri_pelvis"),
        ("a knee MRI", "mri_knee"),
        ("brain scan please", "mri_brain"),
        ("my lower back", "mri_spine"),
        ("Abdominal", "mri_abdomen"),
        ("mri_knee", "mri_knee"),
        ("MRI_BRAIN", "mri_brain"),
        ("value: mri_pelvis", "mri_pelvis"),
    ],
)
def test_match_enum_finds_the_one_value(text: str, expected: str) -> None:
    assert match_enum(text, EXAMS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀",
        "не знаю",
        "МРТ",
        "подколенный",
        "bucket",
        "колено и голова",
        "knee and brain",
        "спина и живот",
        "mri_knee или mri_brain",
        "mri_",
    ],
)
def test_match_enum_refuses_nothing_or_several(text: str) -> None:
    assert match_enum(text, EXAMS) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("имя", "name"),
        ("неправильно записали фамилию", "name"),
        ("номер телефона", "phone"),
        ("дату", "date"),
        ("другой день", "date"),
        ("время", "time"),
        ("at seven o’clock", "time"),
        ("the exam", "exam"),
        ("исследование", "exam"),
        ("change the phone number", "phone"),
    ],
)
def test_match_enum_with_the_change_table(text: str, expected: str) -> None:
    assert match_enum(text, CHANGES) == expected


def test_match_enum_sees_e_and_yo_as_one_letter() -> None:
    assert match_enum("ёлка", {"tree": ["елк"]}) == "tree"
    assert match_enum("елка", {"tree": ["ёлк"]}) == "tree"


def test_match_enum_ignores_empty_stems_and_empty_tables() -> None:
    assert match_enum("что угодно", {"any": ["", "  "]}) is None
    assert match_enum("что угодно", {}) is None


def test_stems_of_the_same_value_do_not_conflict() -> None:
    assert match_enum("МРТ головного мозга, голова болит", EXAMS) == "mri_brain"


def _adversarial_texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "0123456789 .:-/+(),'’_😀abcxyzабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    noise = ["".join(rng.choice(alphabet) for _ in range(2000)) for _ in range(5)]
    units = ["к", "коле", "kne", "_", "ко ле н "]
    return noise + [unit * (2000 // len(unit)) for unit in units]


@pytest.mark.parametrize("text", _adversarial_texts())
def test_match_enum_is_fast_on_long_hostile_input(text: str) -> None:
    started = time.perf_counter()
    found = match_enum(text, EXAMS)
    assert found is None or found in EXAMS
    assert time.perf_counter() - started < 1.0
