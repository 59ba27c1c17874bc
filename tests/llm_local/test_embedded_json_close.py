"""Closing a cut JSON answer: every prefix of a valid document completes to a document
that parses and validates, at the least cost the schema allows."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llm_local.embedded.grammar import normalise
from llm_local.embedded.json_budget import JsonBudget
from llm_local.embedded.json_close import completion
from llm_local.embedded.pattern_close import FORMAT_PATTERNS, pattern_completion
from llm_local.embedded.validate import validate

TURN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "maxLength": 60},
        "slots": {
            "type": "object",
            "properties": {
                "name": {"anyOf": [{"type": "string", "maxLength": 24}, {"type": "null"}]},
                "phone": {"type": ["string", "null"], "maxLength": 16},
                "date": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
                "age": {"type": "integer"},
            },
            "required": ["name", "phone", "date"],
            "additionalProperties": False,
        },
        "next_node": {"enum": ["ask_name", "ask_phone", "confirm"]},
        "score": {"type": "number"},
        "tags": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z]{2,5}(-[0-9]+)?$"},
            "maxItems": 3,
        },
        "ok": {"type": "boolean"},
    },
    "required": ["reply", "slots", "next_node"],
    "additionalProperties": False,
}
DOCUMENTS: list[tuple[dict[str, Any], str]] = [
    (
        TURN,
        '{"reply": "Здравствуйте, Мария! \\"Кавычки\\" и \\u00e9 \\ud83d\\ude00", '
        '"slots": {"name": "Мария", "phone": null, "date": "2025-03-14", "age": -42}, '
        '"next_node": "confirm", "score": -1.5e+3, "tags": ["mri", "knee-2"], "ok": true}',
    ),
    (
        {"type": "object"},
        '{"a": [1, 2.5, {"b": null, "c": "x\\ny"}], "d": false, "e": {}, "f": []}',
    ),
    (
        {"type": "array", "prefixItems": [{"type": "string"}, {"const": {"k": [1, "é"]}}]},
        '["first", {"k": [1, "é"]}]',
    ),
    (
        {"type": "string", "format": "date-time"},
        '"2025-12-31T23:59:58.123+03:00"',
    ),
    (
        {
            "$defs": {"tag": {"enum": ["ab", "cd"]}},
            "type": "array",
            "items": {"$ref": "#/$defs/tag"},
        },
        '["ab", "cd", "ab"]',
    ),
]


def valid(text: str, schema: dict[str, Any]) -> bool:
    try:
        return validate(json.loads(text), schema) is None
    except ValueError:
        return False


@pytest.mark.parametrize(("schema", "document"), DOCUMENTS)
def test_every_prefix_of_a_valid_document_closes_to_a_valid_one(
    schema: dict[str, Any], document: str
) -> None:
    assert valid(document, schema)
    normalised = normalise(schema)

    failures = []
    for end in range(len(document) + 1):
        prefix = document[:end]
        suffix = completion(prefix, normalised)
        if suffix is None or not valid(prefix + suffix, schema):
            failures.append((prefix, suffix))

    assert failures == []


def test_nothing_yet_gives_the_cheapest_document() -> None:
    assert completion("", normalise(TURN)) == (
        '{"reply":"","slots":{"name":null,"phone":null,"date":null},"next_node":"ask_name"}'
    )


@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [
        ('{"reply": "Добрый д', '","slots":{"name":null,"phone":null,"date":null},'),
        ('{"reply": "x", "slots": {"name": "An', '","phone":null,"date":null},'),
        ('{"reply": "x", "slots": {"phone": "1", "date": "2025-1', '0-30","name":null},'),
        ('{"reply": "x", "slots": {"name": nu', 'll,"phone":null,"date":null},'),
        ('{"reply": "x", "slots": {"name": null, "ph', 'one":null,"date":null},'),
        ('{"reply": "x", "slots": {"name": "a\\', '/","phone":null,"date":null},'),
    ],
)
def test_a_cut_value_is_finished_and_required_members_filled(prefix: str, suffix: str) -> None:
    closing = completion(prefix, normalise(TURN))

    assert closing == suffix + '"next_node":"ask_name"}'


def test_a_cut_enum_value_is_finished_to_the_value_it_started() -> None:
    prefix = (
        '{"reply": "x", "slots": {"name": null, "phone": null, "date": null}, "next_node": "con'
    )

    assert completion(prefix, normalise(TURN)) == 'firm"}'


def test_a_complete_document_needs_nothing() -> None:
    text = (
        '{"reply": "", "slots": {"name": null, "phone": null, "date": null}, '
        '"next_node": "confirm"}'
    )

    assert completion(text, normalise(TURN)) == ""
    assert completion(text + " ", normalise(TURN)) == ""


def test_a_number_is_finished_and_minimum_lengths_and_items_met() -> None:
    assert completion("-", normalise({"type": "integer"})) == "0"
    assert completion("1.", normalise({"type": "number"})) == "0"
    assert completion('"a', normalise({"type": "string", "minLength": 3})) == 'aa"'
    schema = {"type": "array", "items": {"type": "boolean"}, "minItems": 2}
    assert completion("[true", normalise(schema)) == ",false]"


def test_a_prefix_the_schema_cannot_start_has_no_completion() -> None:
    assert completion("[", normalise(TURN)) is None
    assert completion('{"other', normalise(TURN)) is None


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", FORMAT_PATTERNS["date"]),
        ("2025-1", FORMAT_PATTERNS["date"]),
        ("12:30:00.", FORMAT_PATTERNS["time"]),
        ("12:30:00+0", FORMAT_PATTERNS["time"]),
        ("ab", FORMAT_PATTERNS["uuid"]),
        ("a", "(ab|cd)+e"),
        ("", "a{2,}b"),
        ("x", "x*y?"),
        ("", "[+-]?[0-9]+([.][0-9]{2})?"),
    ],
)
def test_pattern_completion_is_the_shortest_that_matches(text: str, pattern: str) -> None:
    rest = pattern_completion(text, pattern)

    assert rest is not None
    assert re.fullmatch(pattern, text + rest)
    shorter = [text + rest[:n] for n in range(len(rest))]
    assert not any(re.fullmatch(pattern, s) for s in shorter)


def test_pattern_completion_refuses_a_text_that_cannot_match() -> None:
    assert pattern_completion("q", "[a-c]{2}") is None
    assert pattern_completion("a", "a\\d") is None  # escapes are outside the subset


def test_the_budget_refuses_a_token_after_which_closing_would_not_fit() -> None:
    def count(text: str) -> int:
        return len(text)  # one token per character, for the test

    schema = normalise({"type": "array", "items": {"type": "integer"}})
    budget = JsonBudget(schema, max_tokens=5, count_tokens=count)

    assert budget.admit(b"[", 1)  # closing "]": 1 + 1 <= 5
    assert budget.admit(b"12", 2)  # "]": 2 + 1 <= 5
    assert budget.admit(b",", 3)  # "0]": 3 + 2 <= 5
    assert budget.admit(b"3", 4)  # "]": 4 + 1 <= 5
    assert not budget.admit(b",", 5)  # "0]": 5 + 2 > 5

    assert budget.closing() == ("]", 1)


def test_the_budget_leaves_out_a_character_cut_between_tokens() -> None:
    budget = JsonBudget(normalise({"type": "string"}), max_tokens=10, count_tokens=len)

    assert budget.admit('"д'.encode()[:2], 1)  # the quote and half of "д"

    assert budget.closing() == ('"', 1)
