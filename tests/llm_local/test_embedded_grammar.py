"""JSON schema → GBNF: what is refused by name, what is rewritten, what the grammar admits."""

from __future__ import annotations

from typing import Any

import pytest

from llm_local.backends.base import SchemaUnsupported
from llm_local.embedded.grammar import GrammarCache, compile_schema, normalise
from llm_local.embedded.validate import validate


def rules(grammar: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in grammar.splitlines())


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"not": {"type": "string"}}, "not"),
        ({"if": {"type": "string"}, "then": {"maxLength": 3}}, "if"),
        ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties"),
        ({"type": "object", "dependentSchemas": {"a": {}}}, "dependentSchemas"),
        ({"type": "object", "properties": {}, "minProperties": 1}, "minProperties"),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "contains": {"type": "string"}}, "contains"),
        ({"type": "integer", "multipleOf": 2}, "multipleOf"),
        ({"type": "number", "minimum": 0}, "minimum"),
        ({"type": "string", "format": "email"}, "format: email"),
        ({"type": "string", "pattern": "^\\d+$"}, "pattern"),
        ({"type": "string", "pattern": "abc"}, "pattern"),
        ({"type": "string", "pattern": "^[ -~]+$"}, "pattern"),
        ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, "maxLength"),
        ({"type": "string", "format": "date", "maxLength": 3}, "maxLength"),
        ({"allOf": [{"type": "string"}, {"maxLength": 2}]}, "allOf"),
        ({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 2}]}, "oneOf"),
        ({"type": "object", "required": ["a"]}, "required"),
        ({"$ref": "https://example.com/schema.json"}, "$ref"),
        ({"$ref": "#/$defs/missing"}, "$ref"),
        ({"anyOf": [{"type": "string"}], "maxLength": 3}, "maxLength"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "type"),
        ({"maxLength": 3, "properties": {}}, "type"),
        ({"type": "object", "properties": {"a": True}}, "true"),
        ({"enum": []}, "enum"),
        ({"type": "string", "enum": ["a", 1]}, "enum"),
    ],
)
def test_unsupported_keywords_are_named(schema: dict[str, Any], keyword: str) -> None:
    with pytest.raises(SchemaUnsupported) as caught:
        compile_schema(schema)

    assert f"'{keyword}'" in caught.value.message
    assert caught.value.status == 400


def test_the_path_of_a_nested_keyword_is_named() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"not": {}}}}}

    with pytest.raises(SchemaUnsupported, match="#/properties/a/items"):
        compile_schema(schema)


def test_type_list_becomes_anyof_keeping_each_types_keywords() -> None:
    schema = {"type": ["string", "null"], "maxLength": 3, "description": "a name"}

    assert normalise(schema) == {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]}
    grammar = rules(compile_schema(schema).gbnf)
    assert grammar["root"] == "alternative-0 | null"
    assert grammar["alternative-0"] == r'"\"" (char (char (char)?)?)? "\"" space'


@pytest.mark.parametrize("schema", [{"type": "object"}, {}, {"description": "anything"}])
def test_strings_exclude_raw_control_characters(schema: dict[str, Any]) -> None:
    grammar = rules(compile_schema(schema).gbnf)

    assert grammar["root"] == "object"
    assert grammar["char"].startswith(r'[^"\\\x00-\x1F] | "\\"')


def test_pattern_dot_excludes_quotes_and_controls() -> None:
    grammar = rules(compile_schema({"type": "string", "pattern": "^[a-z]{2}.$"}).gbnf)

    assert grammar["dot"] == r'[^"\\\x00-\x1F]'


def test_literals_are_escaped_for_gbnf_and_kept_utf8() -> None:
    grammar = rules(compile_schema({"enum": ['a"b\\c', "дом"]}).gbnf)

    assert grammar["root"] == r'"\"a\\\"b\\\\c\"" | "\"дом\""'


def test_single_allof_and_local_refs_are_inlined() -> None:
    schema = {
        "$defs": {"Name": {"type": "string", "maxLength": 2, "title": "Name"}},
        "type": "object",
        "properties": {"name": {"allOf": [{"$ref": "#/$defs/Name"}], "description": "x"}},
        "required": ["name"],
    }

    grammar = rules(compile_schema(schema).gbnf)

    assert grammar["name"] == "Name"
    assert grammar["Name"] == r'"\"" (char (char)?)? "\"" space'


def test_disjoint_oneof_is_accepted() -> None:
    schema = {"oneOf": [{"type": "string", "maxLength": 4}, {"type": "null"}, {"const": 1}]}

    assert "root" in rules(compile_schema(schema).gbnf)


def test_grammar_cache_returns_the_same_text_for_equal_schemas() -> None:
    cache = GrammarCache(capacity=1)

    first = cache.get({"type": "object", "properties": {"a": {"type": "string"}}})
    again = cache.get({"properties": {"a": {"type": "string"}}, "type": "object"})

    assert again is first


def test_validator_agrees_with_the_schema_subset() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"], "maxLength": 3},
            "when": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        },
        "required": ["name"],
        "additionalProperties": False,
    }

    assert validate({"name": None, "when": "2025-01-31", "tags": ["a"]}, schema) is None
    assert validate({"name": "long"}, schema) is not None
    assert validate({"name": "a", "when": "2025-13-01"}, schema) is not None
    assert validate({"name": "a", "tags": ["a", "b", "a"]}, schema) is not None
    assert validate({"name": "a", "extra": 1}, schema) is not None
    assert validate({"when": "2025-01-01"}, schema) is not None
