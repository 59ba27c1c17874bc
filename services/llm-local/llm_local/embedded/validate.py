"""A small JSON-schema checker for the subset `grammar.normalise` accepts.

The grammar makes invalid output impossible; this checks it anyway, so a
violation (a converter bug) shows up in stats instead of downstream.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llm_local.embedded.pattern_close import FORMAT_PATTERNS


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "null":
        return value is None
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return type_name == "number" or float(value).is_integer()
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _same(a: Any, b: Any) -> bool:
    """JSON equality (Python's `True == 1` is not JSON's)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def follow_refs(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The schema a chain of local `$ref`s ("#/$defs/x") leads to from `schema`."""
    while "$ref" in schema:
        target: Any = root
        for part in [p for p in str(schema["$ref"])[1:].split("/") if p]:
            target = target[part]
        schema = target
    return schema


def validate(
    instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None
) -> str | None:
    """The first way `instance` fails `schema`, or None when it is valid."""
    root = schema if root is None else root
    if "$ref" in schema:
        return validate(instance, follow_refs(schema, root), root)
    if "anyOf" in schema and all(validate(instance, s, root) for s in schema["anyOf"]):
        return "matches no anyOf branch"
    if "oneOf" in schema and sum(validate(instance, s, root) is None for s in schema["oneOf"]) != 1:
        return "does not match exactly one oneOf branch"
    for sub in schema.get("allOf", []):
        if error := validate(instance, sub, root):
            return error
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(instance, t) for t in names):
            return f"{instance!r} is not of type {types}"
    if "const" in schema and not _same(instance, schema["const"]):
        return f"{instance!r} is not {schema['const']!r}"
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        return f"{instance!r} is not one of {schema['enum']!r}"
    if isinstance(instance, dict):
        return _validate_object(instance, schema, root)
    if isinstance(instance, list):
        return _validate_array(instance, schema, root)
    if isinstance(instance, str):
        return _validate_string(instance, schema)
    return None


def _validate_object(
    instance: dict[str, Any], schema: dict[str, Any], root: dict[str, Any]
) -> str | None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in instance:
            return f"missing required property {name!r}"
    extra = schema.get("additionalProperties", True)
    for name, value in instance.items():
        if name in properties:
            sub = properties[name]
        elif extra is False:
            return f"unexpected property {name!r}"
        elif isinstance(extra, dict):
            sub = extra
        else:
            continue
        if error := validate(value, sub, root):
            return f"{name}: {error}"
    return None


def _validate_array(
    instance: list[Any], schema: dict[str, Any], root: dict[str, Any]
) -> str | None:
    if len(instance) < schema.get("minItems", 0):
        return f"fewer than {schema['minItems']} items"
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        return f"more than {schema['maxItems']} items"
    items = schema.get("items")
    prefix = schema.get("prefixItems", items if isinstance(items, list) else [])
    for index, value in enumerate(instance):
        sub = prefix[index] if index < len(prefix) else items if isinstance(items, dict) else None
        if sub is not None and (error := validate(value, sub, root)):
            return f"[{index}]: {error}"
    return None


def _validate_string(instance: str, schema: dict[str, Any]) -> str | None:
    if len(instance) < schema.get("minLength", 0):
        return f"shorter than {schema['minLength']}"
    if "maxLength" in schema and len(instance) > schema["maxLength"]:
        return f"longer than {schema['maxLength']}"
    if "pattern" in schema and not re.search(schema["pattern"], instance):
        return f"does not match {schema['pattern']}"
    fmt = schema.get("format", "")
    expected = FORMAT_PATTERNS.get("uuid" if fmt.startswith("uuid") else fmt)
    if expected is not None and not re.fullmatch(expected, instance):
        return f"is not a {fmt}"
    return None
