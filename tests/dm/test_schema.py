"""Per-node JSON schemas: allowed moves only, typed slots, sized to the token cap."""

from __future__ import annotations

from typing import Any

import pytest

from dm.flows import Flow, load_flows
from dm.schema import TOKENS_PER_CHAR, build_turn_schema, node_moves


@pytest.fixture(scope="module")
def flows() -> dict[str, Flow]:
    return load_flows()


def _longest_tokens(schema: dict[str, Any], lang: str) -> float:
    """A generous upper bound of the tokens the longest valid object costs."""
    tpc = TOKENS_PER_CHAR[lang]
    if "anyOf" in schema:
        return max(_longest_tokens(option, lang) for option in schema["anyOf"])
    if "enum" in schema:
        return max(len(str(v)) / 3 + 2 for v in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return 2 + sum(
            len(key) / 4 + 3 + _longest_tokens(sub, lang)
            for key, sub in schema["properties"].items()
        )
    if kind == "array":
        return 2 + schema["maxItems"] * (_longest_tokens(schema["items"], lang) + 1)
    if kind == "string":
        return float(schema["maxLength"]) * tpc + 2
    return 2.0


@pytest.mark.parametrize("lang", ["ru", "en"])
@pytest.mark.parametrize("generate", [False, True])
def test_every_node_schema_fits_the_cap(flows: dict[str, Flow], lang: str, generate: bool) -> None:
    for flow in flows.values():
        for node in flow.nodes.values():
            if node.final:
                continue
            turn = build_turn_schema(flow, node, lang, generate=generate, max_tokens=96)
            assert _longest_tokens(turn.schema, lang) <= 96 + 8, (flow.id, node.id)


def test_next_node_is_an_enum_of_allowed_moves(flows: dict[str, Flow]) -> None:
    booking = flows["booking_mri"]
    node = booking.nodes["confirm"]
    turn = build_turn_schema(booking, node, "ru", generate=False, max_tokens=96)
    assert turn.schema["properties"]["next_node"] == {
        "enum": [
            "done",
            "ask_name",
            "ask_phone",
            "ask_exam",
            "ask_date",
            "ask_time",
            "ask_change",
            "confirm",
        ]
    }
    assert turn.moves == node_moves(node)
    assert (
        "done"
        not in build_turn_schema(
            booking, booking.nodes["ask_name"], "ru", generate=False, max_tokens=96
        ).moves
    )


def test_slots_are_typed_nullable_and_closed(flows: dict[str, Flow]) -> None:
    booking = flows["booking_mri"]
    turn = build_turn_schema(
        booking, booking.nodes["ask_name"], "ru", generate=False, max_tokens=96
    )
    slots = turn.schema["properties"]["slots"]
    assert slots["additionalProperties"] is False
    assert set(slots["required"]) == set(slots["properties"])
    name = slots["properties"]["name"]["anyOf"]
    assert name[0]["type"] == "string"
    assert name[0]["maxLength"] <= 40
    assert name[1] == {"type": "null"}
    # Only what the step asks for; volunteered phones, exams, dates are the extractors' job.
    assert list(slots["properties"]) == ["name"]
    assert "reply" not in turn.schema["properties"]
    exam_step = build_turn_schema(
        booking, booking.nodes["ask_exam"], "ru", generate=False, max_tokens=96
    )
    exam_slots = exam_step.schema["properties"]["slots"]["properties"]
    assert exam_slots["exam"]["anyOf"][0] == {"enum": list(booking.slots["exam"].values)}
    # The step's own slot first, then free text a caller may volunteer (a name).
    assert list(exam_slots) == ["exam", "name"]
    assert "confirmed" not in exam_slots


def test_scripted_schema_has_no_reply_and_generate_puts_reply_first(
    flows: dict[str, Flow],
) -> None:
    interview = flows["interview_python_dev"]
    node = interview.nodes["q_testing"]
    generated = build_turn_schema(interview, node, "en", generate=True, max_tokens=96)
    properties = list(generated.schema["properties"])
    assert properties[0] == "reply"
    # The turn never scores: the rubric or a separate judge request does (dm.interview).
    assert set(properties) == {"reply", "next_node"}
    scripted = build_turn_schema(interview, node, "en", generate=False, max_tokens=96)
    assert "reply" not in scripted.schema["properties"]


def test_russian_reply_is_shorter_than_english(flows: dict[str, Flow]) -> None:
    interview = flows["interview_python_dev"]
    node = interview.nodes["q_conflict"]
    ru = build_turn_schema(interview, node, "ru", generate=True, max_tokens=96)
    en = build_turn_schema(interview, node, "en", generate=True, max_tokens=96)
    ru_len = ru.schema["properties"]["reply"]["maxLength"]
    en_len = en.schema["properties"]["reply"]["maxLength"]
    assert 24 <= ru_len < en_len


def test_smaller_cap_shrinks_strings(flows: dict[str, Flow]) -> None:
    booking = flows["booking_mri"]
    node = booking.nodes["ask_name"]
    wide = build_turn_schema(booking, node, "ru", generate=False, max_tokens=96)
    narrow = build_turn_schema(booking, node, "ru", generate=False, max_tokens=40)
    wide_name = wide.schema["properties"]["slots"]["properties"]["name"]["anyOf"][0]
    narrow_name = narrow.schema["properties"]["slots"]["properties"]["name"]["anyOf"][0]
    assert narrow_name["maxLength"] < wide_name["maxLength"]
    exam_step = booking.nodes["ask_exam"]
    assert (
        "name"
        in build_turn_schema(booking, exam_step, "ru", generate=False, max_tokens=96).slot_names
    )
    assert (
        "name"
        not in build_turn_schema(booking, exam_step, "ru", generate=False, max_tokens=30).slot_names
    )
