"""The shortest text that turns a JSON prefix into a document valid against its schema.

The grammar lets a sequence produce only prefixes of valid documents, but the token
cap or the deadline can stop it anywhere. `completion` parses the prefix against the
schema (as `grammar.normalise` returns it) and closes it at the least cost: an open
string closed (padded to `minLength`, or finished to match its pattern or format), a
partial literal, number or key finished, missing required properties filled with the
cheapest value the schema allows (null where allowed, the first enum value, "", 0,
false, [], {}), and the open containers closed.

The parser explores every reading of the prefix (an `anyOf` may match it several
ways) and keeps the shortest completion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm_local.embedded.pattern_close import FORMAT_PATTERNS, pattern_completion
from llm_local.embedded.validate import follow_refs

Schema = dict[str, Any]

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_NUMBER_CHARS = frozenset("-+.eE0123456789")
_WHITESPACE = frozenset(" \t\n\r")
_MAX_DEPTH = 32  # a recursive schema whose cheapest value never ends


class _Unclosable(ValueError):
    """The schema admits no finite value here (a recursive required property)."""


@dataclass(frozen=True, slots=True)
class _Done:
    end: int  # the value ended just before this index


@dataclass(frozen=True, slots=True)
class _Open:
    suffix: str  # the text ended inside the value; this closes it


_Outcome = _Done | _Open


def completion(prefix: str, schema: Schema) -> str | None:
    """The shortest suffix making `prefix` a valid document; None when none exists."""
    reader = _Reader(prefix, schema)
    best: str | None = None
    try:
        for outcome in reader.value(schema, 0):
            if isinstance(outcome, _Open):
                suffix = outcome.suffix
            elif reader.skip(outcome.end) == len(prefix):
                suffix = ""
            else:
                continue
            if best is None or len(suffix) < len(best):
                best = suffix
    except (_Unclosable, RecursionError):
        return None
    return best


def _literal(value: Any) -> str:
    """An enum or const value as the grammar spells it."""
    return json.dumps(value, ensure_ascii=False)


class _Reader:
    def __init__(self, text: str, root: Schema) -> None:
        self.text = text
        self.root = root

    def skip(self, at: int) -> int:
        while at < len(self.text) and self.text[at] in _WHITESPACE:
            at += 1
        return at

    # --- the cheapest whole value -------------------------------------------------

    def cheapest(self, schema: Schema, depth: int = 0) -> str:
        if depth > _MAX_DEPTH:
            raise _Unclosable("no finite value")
        schema = follow_refs(schema, self.root)
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            options = [self.cheapest(b, depth + 1) for b in branches]
            return "null" if "null" in options else min(options, key=len)
        if "const" in schema:
            return _literal(schema["const"])
        if "enum" in schema:
            return _literal(schema["enum"][0])
        kind = schema.get("type")
        if kind == "string":
            return '"' + (self._string_rest("", schema) or "") + '"'
        if kind in ("number", "integer"):
            return "0"
        if kind == "boolean":
            return "false"
        if kind == "array":
            return "[" + self._array_rest(schema, 0, depth) + "]"
        if kind == "object":
            return "{" + self._object_rest(schema, set(), depth) + "}"
        return "null"  # no type: any value

    def _object_rest(self, schema: Schema, seen: set[str], depth: int) -> str:
        """The missing required properties, each after a comma when one comes before."""
        properties = schema.get("properties", {})
        parts = []
        for name in schema.get("required", []):
            if name not in seen:
                value = self.cheapest(properties[name], depth + 1)
                parts.append(f"{_literal(name)}:{value}")
        lead = "," if seen and parts else ""
        return lead + ",".join(parts)

    def _array_rest(self, schema: Schema, count: int, depth: int) -> str:
        """The items an array of `count` items still needs, each after a comma."""
        prefix = schema.get("prefixItems", [])
        wanted = max(len(prefix), schema.get("minItems", 0))
        items = [
            self.cheapest(self._item(schema, index), depth + 1) for index in range(count, wanted)
        ]
        lead = "," if count and items else ""
        return lead + ",".join(items)

    @staticmethod
    def _item(schema: Schema, index: int) -> Schema:
        prefix = schema.get("prefixItems", [])
        if index < len(prefix):
            item: Schema = prefix[index]
            return item
        items = schema.get("items")
        return items if isinstance(items, dict) else {}

    def _string_rest(self, content: str, schema: Schema) -> str | None:
        """Characters completing a string's raw content (before the closing quote)."""
        pattern = schema.get("pattern")
        fmt = schema.get("format")
        if fmt is not None:
            pattern = FORMAT_PATTERNS["uuid" if str(fmt).startswith("uuid") else fmt]
        elif pattern is not None:
            pattern = str(pattern)[1:-1]  # the grammar requires ^...$
        if pattern is not None:
            return pattern_completion(content, pattern)
        shortest: int = schema.get("minLength", 0)
        return "a" * max(0, shortest - _json_length(content))

    # --- reading the prefix -----------------------------------------------------------

    def value(self, schema: Schema, at: int, depth: int = 0) -> Iterator[_Outcome]:
        at = self.skip(at)
        schema = follow_refs(schema, self.root)
        if at == len(self.text):
            yield _Open(self.cheapest(schema, depth))
            return
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            for branch in branches:
                yield from self.value(branch, at, depth + 1)
            return
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else schema["enum"]
            yield from self._literals([_literal(v) for v in values], at)
            return
        kind = schema.get("type")
        char = self.text[at]
        if kind is None:
            kind = _kind_of(char)
            schema = {"type": kind} if kind in ("string", "object", "array") else {}
        if kind == "string" and char == '"':
            yield from self._string(schema, at)
        elif kind in ("number", "integer") and char in _NUMBER_CHARS:
            yield from self._number(at)
        elif kind == "boolean":
            yield from self._literals(["true", "false"], at)
        elif kind == "null":
            yield from self._literals(["null"], at)
        elif kind == "object" and char == "{":
            yield from self._members(schema, at + 1, set(), depth)
        elif kind == "array" and char == "[":
            yield from self._items(schema, at + 1, 0, depth)
        elif kind == "literal":
            yield from self._literals(["true", "false", "null"], at)

    def _literals(self, literals: list[str], at: int) -> Iterator[_Outcome]:
        rest = self.text[at:]
        for literal in literals:
            if rest.startswith(literal):
                yield _Done(at + len(literal))
            elif literal.startswith(rest):
                yield _Open(literal[len(rest) :])

    def _number(self, at: int) -> Iterator[_Outcome]:
        end = at
        while end < len(self.text) and self.text[end] in _NUMBER_CHARS:
            end += 1
        digits = self.text[at:end]
        if end < len(self.text):
            if _NUMBER.fullmatch(digits):
                yield _Done(end)
        elif _NUMBER.fullmatch(digits):
            yield _Open("")
        elif _NUMBER.fullmatch(digits + "0"):
            yield _Open("0")

    def _string(self, schema: Schema, at: int) -> Iterator[_Outcome]:
        """A string from its opening quote at `at`."""
        end, content, escape = self._scan_string(at + 1)
        if end is not None:
            yield _Done(end)
            return
        rest = self._string_rest(content + escape, schema)
        if rest is not None:
            yield _Open(escape + rest + '"')

    def _scan_string(self, at: int) -> tuple[int | None, str, str]:
        """A string's content from `at`: the index after its closing quote (None when
        the text ends first), its raw content, and what completes a cut escape."""
        text = self.text
        i = at
        while i < len(text):
            if text[i] == '"':
                return i + 1, text[at:i], ""
            if text[i] != "\\":
                i += 1
                continue
            size = 6 if text[i + 1 : i + 2] == "u" else 2
            if i + size > len(text):
                return None, text[at:], _finish_escape(text[i:])
            i += size
        return None, text[at:], ""

    def _members(self, schema: Schema, at: int, seen: set[str], depth: int) -> Iterator[_Outcome]:
        """An object's members from `at` (after `{` or after a member's value)."""
        at = self.skip(at)
        if at == len(self.text):
            yield _Open(self._object_rest(schema, seen, depth) + "}")
            return
        char = self.text[at]
        if char == "}":
            yield _Done(at + 1)
            return
        if seen:
            if char != ",":
                return
            at = self.skip(at + 1)
        yield from self._member(schema, at, seen, depth)

    def _member(self, schema: Schema, at: int, seen: set[str], depth: int) -> Iterator[_Outcome]:
        properties: dict[str, Schema] = schema.get("properties", {})
        extra = self._extra(schema)
        if at == len(self.text):  # after a comma: another member must follow
            names = [n for n in properties if n not in seen]
            for name in names + ([""] if extra is not None and "" not in seen else []):
                sub = properties.get(name, extra or {})
                yield _Open(_literal(name) + ":" + self._value_rest(schema, name, sub, seen, depth))
            return
        if self.text[at] != '"':
            return
        end, raw, escape = self._scan_string(at + 1)
        if end is None:  # cut inside the name
            for name, sub in properties.items():
                spelled = _literal(name)[1:-1]
                if name not in seen and spelled.startswith(raw):
                    rest = self._value_rest(schema, name, sub, seen, depth)
                    yield _Open(spelled[len(raw) :] + '":' + rest)
            if extra is not None:
                name = json.loads('"' + raw + escape + '"')
                rest = self._value_rest(schema, name, extra, seen, depth)
                yield _Open(escape + '":' + rest)
            return
        name = json.loads(self.text[at:end])
        sub = properties.get(name, extra or {})
        after = self.skip(end)
        if after == len(self.text):
            yield _Open(":" + self._value_rest(schema, name, sub, seen, depth))
            return
        if self.text[after] != ":":
            return
        for outcome in self.value(sub, after + 1, depth + 1):
            if isinstance(outcome, _Open):
                rest = self._object_rest(schema, seen | {name}, depth)
                yield _Open(outcome.suffix + rest + "}")
            else:
                yield from self._members(schema, outcome.end, seen | {name}, depth)

    def _value_rest(
        self, schema: Schema, name: str, sub: Schema, seen: set[str], depth: int
    ) -> str:
        """A member's cheapest value, the missing required members and the closing brace."""
        rest = self._object_rest(schema, seen | {name}, depth)
        return self.cheapest(sub, depth + 1) + rest + "}"

    @staticmethod
    def _extra(schema: Schema) -> Schema | None:
        """The schema of members beyond `properties`; None when there may be none (the
        converter admits others only when told, or when there are no properties)."""
        extra = schema.get("additionalProperties", not schema.get("properties"))
        if extra is False:
            return None
        return extra if isinstance(extra, dict) else {}

    def _items(self, schema: Schema, at: int, count: int, depth: int) -> Iterator[_Outcome]:
        """An array's items from `at` (after `[` or after an item)."""
        at = self.skip(at)
        if at == len(self.text):
            yield _Open(self._array_rest(schema, count, depth) + "]")
            return
        if self.text[at] == "]":
            yield _Done(at + 1)
            return
        if count:
            if self.text[at] != ",":
                return
            at = self.skip(at + 1)
        for outcome in self.value(self._item(schema, count), at, depth + 1):
            if isinstance(outcome, _Open):
                yield _Open(outcome.suffix + self._array_rest(schema, count + 1, depth) + "]")
            else:
                yield from self._items(schema, outcome.end, count + 1, depth)


def _kind_of(char: str) -> str:
    """The JSON type a value starting with `char` has, for a schema that says none."""
    if char == '"':
        return "string"
    if char == "{":
        return "object"
    if char == "[":
        return "array"
    return "number" if char in _NUMBER_CHARS else "literal"


def _finish_escape(escape: str) -> str:
    """What completes a cut escape sequence (`\\`, `\\u`, `\\u12`...)."""
    if escape == "\\":
        return "/"  # `\\/` is "/"
    fill = "0" * (6 - len(escape))
    if 0xD800 <= int(escape[2:] + fill, 16) <= 0xDBFF:  # a high surrogate needs its low half
        return fill + "\\udc00"
    return fill


def _json_length(content: str) -> int:
    """Characters of a raw string content, an escape sequence counting as one."""
    return len(re.sub(r"\\(u[0-9a-fA-F]{4}|.)", "_", content))
