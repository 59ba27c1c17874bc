"""The JSON schema the LLM must fill for one node, sized to fit the token cap.

`next_node` is an enum of the node's allowed moves (its transitions and staying),
`slots` holds only slot names the node may fill, with their types, and every
string has a `maxLength` small enough that the whole object, at its longest,
fits `max_tokens`. A runaway string ("мария_мария_…") then ends at its bound
instead of cutting the object short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dm.flows import Flow, Node, SlotSpec

# Worst-case tokens per character of free text, by language (SmolLM2's vocabulary
# measured ~0.23 for English and ~0.84 for Russian on average; digits cost one each).
TOKENS_PER_CHAR = {"ru": 0.9, "en": 0.35}
DIGIT_TOKENS_PER_CHAR = 1.0
# Tokens a key costs with its quotes, colon and comma.
KEY_OVERHEAD = 3
MIN_STRING_CHARS = {"string": 12, "name": 12, "phone": 16, "date": 10, "time": 5}
DEFAULT_STRING_CHARS = {"string": 40, "name": 40, "phone": 20, "date": 24, "time": 16}
# One short sentence. Longer bounds let a small model ramble to the bound: measured
# with SmolLM2-135M, an English reply bounded at 200 characters took the interview
# turn to 83 tokens and past the 5 s deadline.
REPLY_CHARS = {"ru": 60, "en": 90}
MIN_REPLY_CHARS = 24
SAFETY_TOKENS = 4
FREE_TEXT = ("string", "name")


@dataclass(frozen=True, slots=True)
class TurnSchema:
    schema: dict[str, Any]
    slot_names: tuple[str, ...]  # slots the LLM may fill this turn
    moves: tuple[str, ...]  # allowed next_node values
    has_reply: bool
    reply_chars: int  # the reply's maxLength (0 without a reply)


def node_moves(node: Node) -> tuple[str, ...]:
    """The node ids `next_node` may name: the transitions, then staying."""
    return tuple(dict.fromkeys([*node.targets, node.id]))


def node_red_flags(flow: Flow, node: Node) -> tuple[str, ...]:
    """The red flags an answer at this node may raise: the node's list, else the flow's."""
    return tuple(node.red_flags if node.red_flags is not None else flow.red_flags)


def fillable_slots(flow: Flow, node: Node) -> list[str]:
    """Slots the caller may fill at this node: the ones it collects first."""
    names = list(node.collects)
    if flow.volunteered_slots:
        names += [
            name
            for name, spec in flow.slots.items()
            if name not in names and not spec.only_when_asked
        ]
    return names


def build_turn_schema(
    flow: Flow, node: Node, lang: str, *, generate: bool, max_tokens: int
) -> TurnSchema:
    tpc = TOKENS_PER_CHAR.get(lang, TOKENS_PER_CHAR["ru"])
    moves = node_moves(node)
    budget = float(max_tokens - SAFETY_TOKENS - 2)  # the outer braces

    tail: dict[str, Any] = {}
    tail["next_node"] = {"enum": list(moves)}
    budget -= KEY_OVERHEAD + _longest_enum(moves)

    if generate:
        budget -= KEY_OVERHEAD + 2
    budget -= KEY_OVERHEAD + 2  # the "slots" key and braces
    # The node's own slots first, then the reply, then volunteered slots while they fit.
    reserve = MIN_REPLY_CHARS * tpc if generate else 0.0
    slot_schemas, budget = _fit_own_slots(flow, node, tpc, budget - reserve)
    budget += reserve
    reply_chars = 0
    if generate:
        reply_chars = max(MIN_REPLY_CHARS, min(REPLY_CHARS.get(lang, 90), int(budget / tpc)))
        budget -= reply_chars * tpc
    slot_schemas.update(_fit_volunteered_slots(flow, node, tpc, budget, slot_schemas))

    properties: dict[str, Any] = {}
    if generate:
        properties["reply"] = {"type": "string", "minLength": 1, "maxLength": reply_chars}
    if slot_schemas:
        properties["slots"] = {
            "type": "object",
            "properties": slot_schemas,
            "required": list(slot_schemas),
            "additionalProperties": False,
        }
    properties.update(tail)
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return TurnSchema(
        schema=schema,
        slot_names=tuple(slot_schemas),
        moves=moves,
        has_reply=generate,
        reply_chars=reply_chars,
    )


def _fit_own_slots(
    flow: Flow, node: Node, tpc: float, budget: float
) -> tuple[dict[str, Any], float]:
    """The node's own slots, shrunk together if they would not fit; and the budget left."""
    own = [flow.slots[name] for name in node.collects]
    total = sum(_slot_cost(spec, tpc, None) for spec in own)
    scale = min(1.0, max(budget, 0.0) / total) if total else 1.0
    chosen: dict[str, Any] = {}
    for name, spec in zip(node.collects, own, strict=True):
        chars = _scaled_chars(spec, scale)
        chosen[name] = _slot_schema(spec, chars)
        budget -= _slot_cost(spec, tpc, chars)
    return chosen, budget


def _fit_volunteered_slots(
    flow: Flow, node: Node, tpc: float, budget: float, taken: dict[str, Any]
) -> dict[str, Any]:
    """Free-text slots a caller may volunteer here, at full size, while they fit in `budget`.

    Volunteered phones, dates, times, numbers and choices are read from the caller's
    words by dm's extractors at every step; asking the LLM for them too only costs
    tokens (and invites guesses). Free text has no extractor, so the LLM reads it.
    """
    chosen: dict[str, Any] = {}
    for name in fillable_slots(flow, node):
        cost = _slot_cost(flow.slots[name], tpc, None)
        free_text = flow.slots[name].type in FREE_TEXT
        if name not in taken and free_text and cost <= budget:
            chosen[name] = _slot_schema(flow.slots[name], None)
            budget -= cost
    return chosen


def _string_chars(spec: SlotSpec) -> int:
    if spec.type in ("string", "name"):
        return spec.max_length
    return min(spec.max_length, DEFAULT_STRING_CHARS[spec.type])


def _scaled_chars(spec: SlotSpec, scale: float) -> int | None:
    if spec.type not in DEFAULT_STRING_CHARS:
        return None
    return max(MIN_STRING_CHARS[spec.type], int(_string_chars(spec) * scale))


def _slot_schema(spec: SlotSpec, chars: int | None) -> dict[str, Any]:
    value: dict[str, Any]
    if spec.type == "enum":
        value = {"enum": list(spec.values)}
    elif spec.type == "boolean":
        value = {"type": "boolean"}
    elif spec.type == "integer":
        value = {"type": "integer"}  # bounds are checked by dm: not every grammar has them
    else:
        value = {"type": "string", "maxLength": chars or _string_chars(spec)}
    # anyOf, not "type": [..., "null"]: llama.cpp's converter drops maxLength on type lists.
    return {"anyOf": [value, {"type": "null"}]}


def _slot_cost(spec: SlotSpec, tpc: float, chars: int | None) -> float:
    if spec.type == "enum":
        body: float = _longest_enum(list(spec.values))
    elif spec.type == "boolean":
        body = 1
    elif spec.type == "integer":
        body = 4
    else:
        rate = DIGIT_TOKENS_PER_CHAR if spec.type == "phone" else tpc
        body = (chars or _string_chars(spec)) * rate + 2
    return KEY_OVERHEAD + body


def _longest_enum(values: Any) -> int:
    """Tokens of the longest enum member, quoted (~4 ASCII characters a token)."""
    return max((len(str(v)) // 3 + 3 for v in values), default=1)
