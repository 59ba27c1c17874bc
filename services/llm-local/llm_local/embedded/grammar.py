"""JSON schema → GBNF grammar, through llama-cpp-python's converter, made strict.

The converter (`llama_cpp.llama_grammar.SchemaConverter`) silently ignores what it
cannot express. So a schema is first walked and normalised here: every keyword the
converter would drop is refused by name (`SchemaUnsupported`), annotations are
stripped, and shapes it mishandles are rewritten. Its grammar is then patched so
every output is strict JSON:

- `"type": [a, b]` becomes `anyOf` of one branch per type carrying that type's own
  keywords (the converter would emit bare types and lose `maxLength`, `enum`...);
- its string rule admits raw control characters (a newline inside a string breaks
  strict JSON parsers): they are excluded, as are quotes and backslashes from the
  `.` of patterns;
- literals (enum/const values, property names) are escaped for GBNF completely, and
  non-ASCII enum values are kept as UTF-8 instead of `\\uXXXX` escapes.
"""

from __future__ import annotations

import copy
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from llama_cpp.llama_grammar import SchemaConverter

from llm_local.backends.base import SchemaUnsupported
from llm_local.embedded.validate import follow_refs

Schema = dict[str, Any]

TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "$schema",
        "$id",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentEncoding",
        "contentMediaType",
    }
)
DEFINITIONS = ("$defs", "definitions")
# The formats SchemaConverter turns into grammar rules (uuid: `^uuid[1-5]?$`).
FORMATS = frozenset({"date", "time", "date-time", "uuid", *(f"uuid{n}" for n in range(1, 6))})

# Keywords a validator enforces per instance type, split into what the converter
# turns into grammar and what it drops (verified against SchemaConverter.visit).
ENFORCED: dict[str, frozenset[str]] = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems"}),
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "number": frozenset(),
    "integer": frozenset(),
    "boolean": frozenset(),
    "null": frozenset(),
}
DROPPED: dict[str, frozenset[str]] = {
    "object": frozenset(
        {
            "minProperties",
            "maxProperties",
            "patternProperties",
            "propertyNames",
            "dependentRequired",
            "dependentSchemas",
            "dependencies",
            "unevaluatedProperties",
        }
    ),
    "array": frozenset(
        {
            "uniqueItems",
            "contains",
            "minContains",
            "maxContains",
            "unevaluatedItems",
            "additionalItems",
        }
    ),
    "string": frozenset(),
    "number": frozenset(
        {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    ),
    "boolean": frozenset(),
    "null": frozenset(),
}
DROPPED["integer"] = DROPPED["number"]
FAMILY_OF: dict[str, str] = {
    keyword: kind
    for kind in ("object", "array", "string", "number")
    for keyword in ENFORCED[kind] | DROPPED[kind]
}
GENERIC = frozenset({"type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf"})

# A JSON string character: anything but a quote, a backslash or a control character,
# or an escape sequence.
STRICT_CHAR = (
    r'[^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)
# `.` of a pattern, emitted raw inside a JSON string.
STRICT_DOT = r'[^"\\\x00-\x1F]'
_GBNF_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}


def _unsupported(keyword: str, path: str, why: str = "") -> SchemaUnsupported:
    where = "#" + path
    reason = f": {why}" if why else ""
    return SchemaUnsupported(
        f"response_format schema keyword '{keyword}' at {where} cannot be enforced "
        f"by the embedded backend{reason}"
    )


def _kind(value: Any) -> str:
    """The JSON type of a value, integers counted as numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _matches_type(value: Any, type_name: str) -> bool:
    if type_name == "integer":
        return _kind(value) == "number" and float(value).is_integer()
    return _kind(value) == type_name


class _Normaliser:
    """Walks a schema, refuses what the converter drops, rewrites what it mishandles."""

    def __init__(self, root: Schema) -> None:
        self._root = root
        self._followed: set[str] = set()

    def schema(self, node: Any, path: str) -> Schema:
        if not isinstance(node, dict):
            raise _unsupported(json.dumps(node)[:20], path, "only object schemas are supported")
        body = {k: v for k, v in node.items() if k not in ANNOTATIONS and k not in DEFINITIONS}
        out = self._visit(body, path)
        out.update({k: node[k] for k in DEFINITIONS if k in node})
        return out

    def _visit(self, node: Schema, path: str) -> Schema:
        if "$ref" in node:
            self._only(node, "$ref", path)
            self._follow(node["$ref"], path)
            return {"$ref": node["$ref"]}
        if "oneOf" in node or "anyOf" in node:
            return self._union(node, path)
        if "allOf" in node:
            branches = node["allOf"]
            if isinstance(branches, list) and len(branches) == 1:
                self._only(node, "allOf", path)
                return self.schema(branches[0], f"{path}/allOf/0")
            raise _unsupported("allOf", path, "only a single-schema allOf is supported")
        types = node.get("type")
        if isinstance(types, list):
            return self._type_list(node, types, path)
        if "const" in node or "enum" in node:
            return self._constants(node, path)
        type_name = types if types is not None else self._infer_type(node, path)
        if type_name is None:
            return {}
        if type_name not in TYPES:
            raise _unsupported("type", path, f"unknown type {type_name!r}")
        return self._typed(node, type_name, path)

    def _only(self, node: Schema, keyword: str, path: str) -> None:
        for other in node:
            if other != keyword:
                raise _unsupported(other, path, f"not supported alongside '{keyword}'")

    def _follow(self, ref: Any, path: str) -> None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _unsupported("$ref", path, "only local references (#/...) are supported")
        if ref in self._followed:
            return
        self._followed.add(ref)
        parent: Any = None
        key: Any = None
        target: Any = self._root
        for part in [p for p in ref[1:].split("/") if p]:
            if not isinstance(target, dict) or part not in target:
                raise _unsupported("$ref", path, f"{ref} does not resolve")
            parent, key, target = target, part, target[part]
        if parent is None:
            raise _unsupported("$ref", path, "a reference to the root schema is not supported")
        parent[key] = self.schema(target, ref[1:])

    def _union(self, node: Schema, path: str) -> Schema:
        keyword = "oneOf" if "oneOf" in node else "anyOf"
        self._only(node, keyword, path)
        branches = node[keyword]
        if not isinstance(branches, list) or not branches:
            raise _unsupported(keyword, path, "needs a non-empty list of schemas")
        out = [self.schema(b, f"{path}/{keyword}/{i}") for i, b in enumerate(branches)]
        if keyword == "oneOf":
            self._check_disjoint(out, path)
        return {keyword: out}

    def _check_disjoint(self, branches: list[Schema], path: str) -> None:
        """The grammar cannot forbid a value matching two branches: they must not overlap."""
        seen: list[tuple[frozenset[str], frozenset[str] | None]] = []
        for branch in branches:
            resolved = follow_refs(branch, self._root)
            values = resolved.get("enum", [resolved["const"]] if "const" in resolved else None)
            if values is not None:
                kinds = frozenset(_kind(v) for v in values)
                canon: frozenset[str] | None = frozenset(json.dumps(v) for v in values)
            elif isinstance(resolved.get("type"), str):
                type_name = resolved["type"]
                kinds = frozenset({"number" if type_name == "integer" else type_name})
                canon = None
            else:
                raise _unsupported("oneOf", path, "each branch needs one 'type', 'enum' or 'const'")
            for other_kinds, other_canon in seen:
                overlap = bool(kinds & other_kinds)
                if overlap and canon is not None and other_canon is not None:
                    overlap = bool(canon & other_canon)
                if overlap:
                    raise _unsupported("oneOf", path, "branches can match the same value")
            seen.append((kinds, canon))

    def _type_list(self, node: Schema, types: list[Any], path: str) -> Schema:
        if not types or any(t not in TYPES for t in types):
            raise _unsupported("type", path, f"unknown type in {types!r}")
        if len(types) == 1:
            return self._visit({**node, "type": types[0]}, path)
        for keyword in node:
            if keyword not in GENERIC and keyword not in FAMILY_OF:
                raise _unsupported(keyword, path)
        branches = []
        for type_name in types:
            family = ENFORCED[type_name] | DROPPED[type_name]
            own = {k: v for k, v in node.items() if k in family or k in ("enum", "const")}
            branches.append(self._visit({**own, "type": type_name}, path))
        return {"anyOf": branches}

    def _constants(self, node: Schema, path: str) -> Schema:
        if "const" in node and "enum" in node:
            raise _unsupported("enum", path, "not supported alongside 'const'")
        keyword = "const" if "const" in node else "enum"
        for other in node:
            if other not in (keyword, "type"):
                raise _unsupported(other, path, f"not supported alongside '{keyword}'")
        values = [node["const"]] if keyword == "const" else node["enum"]
        if not isinstance(values, list) or not values:
            raise _unsupported("enum", path, "needs a non-empty list of values")
        type_name = node.get("type")
        for value in values:
            if isinstance(type_name, str) and not _matches_type(value, type_name):
                raise _unsupported(keyword, path, f"{value!r} is not of type {type_name}")
        return {"const": node["const"]} if keyword == "const" else {"enum": list(values)}

    def _infer_type(self, node: Schema, path: str) -> str | None:
        """The type a type-less schema constrains, from its keywords (None when empty)."""
        families = {FAMILY_OF[k] for k in node if k in FAMILY_OF}
        for keyword in node:
            if keyword not in FAMILY_OF:
                raise _unsupported(keyword, path)
        if len(families) > 1:
            raise _unsupported("type", path, "missing, and the keywords belong to several types")
        return families.pop() if families else None

    def _typed(self, node: Schema, type_name: str, path: str) -> Schema:
        for keyword in node:
            if keyword == "type" or keyword in ENFORCED[type_name]:
                continue
            if keyword in DROPPED[type_name] or keyword not in FAMILY_OF:
                raise _unsupported(keyword, path)
        own = {k: v for k, v in node.items() if k in ENFORCED[type_name]}
        if type_name == "object":
            return self._object(own, path)
        if type_name == "array":
            return self._array(own, path)
        if type_name == "string":
            return self._string(own, path)
        return {"type": type_name}

    def _object(self, node: Schema, path: str) -> Schema:
        out: Schema = {"type": "object"}
        properties = node.get("properties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise _unsupported("properties", path, "must be an object")
            out["properties"] = {
                name: self.schema(sub, f"{path}/properties/{name}")
                for name, sub in properties.items()
            }
        required = node.get("required", [])
        if not isinstance(required, list) or any(r not in (properties or {}) for r in required):
            raise _unsupported("required", path, "every required name must be in 'properties'")
        if required:
            out["required"] = required
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = self.schema(extra, f"{path}/additionalProperties")
        elif isinstance(extra, bool):
            out["additionalProperties"] = extra
        elif extra is not None:
            raise _unsupported("additionalProperties", path, "must be a boolean or a schema")
        return out

    def _array(self, node: Schema, path: str) -> Schema:
        items = node.get("items")
        prefix = node.get("prefixItems")
        bounded = "minItems" in node or "maxItems" in node
        if items is not None and prefix is not None:
            raise _unsupported("prefixItems", path, "not supported alongside 'items'")
        tuple_items = prefix if prefix is not None else items if isinstance(items, list) else None
        if tuple_items is not None:
            if bounded:
                raise _unsupported("minItems" if "minItems" in node else "maxItems", path)
            return {
                "type": "array",
                "prefixItems": [
                    self.schema(s, f"{path}/prefixItems/{i}") for i, s in enumerate(tuple_items)
                ],
            }
        if items is None:
            if bounded:
                raise _unsupported(
                    "minItems" if "minItems" in node else "maxItems", path, "needs 'items'"
                )
            return {"type": "array"}
        out: Schema = {"type": "array", "items": self.schema(items, f"{path}/items")}
        low, high = node.get("minItems", 0), node.get("maxItems")
        _check_bounds("minItems", "maxItems", low, high, path)
        out.update({"minItems": low} if low else {})
        out.update({"maxItems": high} if high is not None else {})
        return out

    def _string(self, node: Schema, path: str) -> Schema:
        lengths = "minLength" in node or "maxLength" in node
        if "pattern" in node:
            if lengths or "format" in node:
                other = (
                    "format"
                    if "format" in node
                    else "maxLength"
                    if "maxLength" in node
                    else "minLength"
                )
                raise _unsupported(other, path, "not supported alongside 'pattern'")
            _check_pattern(node["pattern"], path)
            return {"type": "string", "pattern": node["pattern"]}
        if "format" in node:
            if node["format"] not in FORMATS:
                raise _unsupported(f"format: {node['format']}", path)
            if lengths:
                raise _unsupported("maxLength" if "maxLength" in node else "minLength", path)
            return {"type": "string", "format": node["format"]}
        low, high = node.get("minLength", 0), node.get("maxLength")
        _check_bounds("minLength", "maxLength", low, high, path)
        out: Schema = {"type": "string"}
        out.update({"minLength": low} if low else {})
        out.update({"maxLength": high} if high is not None else {})
        return out


def _check_bounds(low_name: str, high_name: str, low: Any, high: Any, path: str) -> None:
    for name, value in ((low_name, low), (high_name, high)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise _unsupported(name, path, "must be a non-negative integer")
    if high is not None and low > high:
        raise _unsupported(low_name, path, f"greater than {high_name}")


_CLASS_RE = re.compile(r"\[([^\]]*)\]")


def _check_pattern(pattern: Any, path: str) -> None:
    """Admit only patterns whose grammar cannot emit a quote, a backslash or a control char.

    The converter copies pattern characters into the JSON string unescaped.
    """
    if not isinstance(pattern, str) or not (pattern.startswith("^") and pattern.endswith("$")):
        raise _unsupported("pattern", path, "must be anchored with ^ and $")
    body = pattern[1:-1]
    for bad, why in (
        ("(?", "lookarounds and non-capturing groups"),
        ("\\", "backslash escapes"),
        ('"', "quotes"),
        ("[^", "negated character classes"),
    ):
        if bad in body:
            raise _unsupported("pattern", path, f"{why} are not supported")
    if any(ord(c) < 0x20 for c in body):
        raise _unsupported("pattern", path, "control characters are not supported")
    for chars in _CLASS_RE.findall(body):
        for start, end in re.findall(r"(.)-(.)", chars):
            if any(ord(start) <= c <= ord(end) for c in (0x22, 0x5C)):
                raise _unsupported("pattern", path, f"the range {start}-{end} admits a quote")


def normalise(schema: Schema) -> Schema:
    """The schema the converter gets; raises SchemaUnsupported naming the first problem."""
    root = copy.deepcopy(schema)
    return _Normaliser(root).schema(root, "")


class _Converter(Protocol):
    def resolve_refs(self, schema: Schema, url: str) -> Schema: ...
    def visit(self, schema: Schema, name: str) -> str: ...
    def format_grammar(self) -> str: ...


class _StrictConverter(SchemaConverter):
    """The converter with literals escaped for GBNF in full."""

    def _format_literal(self, literal: str) -> str:
        return '"' + "".join(_GBNF_LITERAL_ESCAPES.get(c, c) for c in literal) + '"'

    def _generate_constant_rule(self, value: Any) -> str:
        return self._format_literal(json.dumps(value, ensure_ascii=False))


def _patch(grammar: str) -> str:
    rules = []
    for line in grammar.splitlines():
        name, _, body = line.partition(" ::= ")
        if name == "char":
            body = STRICT_CHAR
        elif name == "dot":
            body = STRICT_DOT
        rules.append(f"{name} ::= {body}")
    return "\n".join(rules) + "\n"


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    gbnf: str  # the grammar every output follows
    schema: Schema  # the normalised schema it enforces (what closing a cut answer reads)


def compile_schema(schema: Schema) -> CompiledSchema:
    """A GBNF grammar whose every sentence is strict JSON valid against `schema`, with
    the schema as normalised for it."""
    normalised = normalise(schema)
    # Typed through the protocol: the converter's own methods carry no annotations.
    make: Callable[..., _Converter] = _StrictConverter
    converter = make(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    try:
        # The converter resolves references in place: it gets its own copy.
        resolved = converter.resolve_refs(copy.deepcopy(normalised), "")
        converter.visit(resolved, "")
        grammar: str = converter.format_grammar()
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SchemaUnsupported(f"response_format schema cannot be converted: {exc}") from exc
    return CompiledSchema(_patch(grammar), normalised)


class GrammarCache:
    """Compiled grammars by schema: a service sees a handful of distinct schemas."""

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._compiled: OrderedDict[str, CompiledSchema] = OrderedDict()

    def get(self, schema: Schema) -> CompiledSchema:
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = compile_schema(schema)
            self._compiled[key] = compiled
            if len(self._compiled) > self._capacity:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled
