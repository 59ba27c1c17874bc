"""Flow files: the shipped flows load; a bad flow fails naming the file and the node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dm.flows import FlowError, load_flow, load_flows
from dm.flows.loader import BUILTIN_DIR

BOOKING = BUILTIN_DIR / "booking_mri.yaml"
INTERVIEW = BUILTIN_DIR / "interview_python_dev.yaml"


def test_shipped_flows_load() -> None:
    flows = load_flows()
    assert set(flows) == {"booking_mri", "interview_python_dev"}
    booking = flows["booking_mri"]
    assert booking.kind == "booking"
    assert booking.reply_mode == "scripted"
    assert {"name", "phone", "exam", "date", "time"} <= set(booking.slots)
    assert any(node.final for node in booking.nodes.values())
    assert set(booking.languages) == {"ru", "en"}


def test_interview_has_blocks_questions_and_wrap_up() -> None:
    interview = load_flows()["interview_python_dev"]
    questions = [node for node in interview.nodes.values() if node.block]
    assert len(questions) >= 6
    assert len({node.block for node in questions}) >= 3
    assert interview.red_flags
    assert "wrap_up" in interview.nodes
    # Scripted by default: the embedded CPU model writes poor Russian (DM_REPLY_MODE switches).
    assert interview.reply_mode == "scripted"
    assert all(node.rubric is not None for node in questions)


def _write_variant(tmp_path: Path, change: Any, flow: Path = BOOKING) -> Path:
    data = yaml.safe_load(flow.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _unknown_target(data: dict[str, Any]) -> None:
    data["nodes"]["ask_phone"]["transitions"] = [{"to": "nowhere"}]


def _unreachable(data: dict[str, Any]) -> None:
    data["nodes"]["orphan"] = {"say": {"ru": "а", "en": "a"}, "transitions": [{"to": "done"}]}


def _no_final(data: dict[str, Any]) -> None:
    data["nodes"]["done"]["final"] = False
    data["nodes"]["done"]["transitions"] = [{"to": "ask_name"}]


def _unknown_slot(data: dict[str, Any]) -> None:
    data["nodes"]["ask_exam"]["collects"] = ["shoe_size"]


def _unknown_placeholder(data: dict[str, Any]) -> None:
    data["nodes"]["ask_date"]["say"]["en"] = "When, {nickname}?"


def _missing_language(data: dict[str, Any]) -> None:
    del data["nodes"]["ask_time"]["say"]["en"]


def _bad_guard(data: dict[str, Any]) -> None:
    data["nodes"]["confirm"]["transitions"][0]["when"] = {"name": True}


def _dead_end(data: dict[str, Any]) -> None:
    data["nodes"]["ask_change"]["transitions"].append({"to": "limbo"})
    data["nodes"]["limbo"] = {"say": {"ru": "а", "en": "a"}, "transitions": [{"to": "limbo_2"}]}
    data["nodes"]["limbo_2"] = {"say": {"ru": "б", "en": "b"}, "transitions": [{"to": "limbo"}]}


@pytest.mark.parametrize(
    ("change", "node", "message"),
    [
        (_unknown_target, "ask_phone", "unknown transition target 'nowhere'"),
        (_unreachable, "orphan", "unreachable"),
        (_no_final, None, "no final node"),
        (_unknown_slot, "ask_exam", "unknown slot 'shoe_size'"),
        (_unknown_placeholder, "ask_date", "unknown slot '{nickname}'"),
        (_missing_language, "ask_time", "no 'say' text for language 'en'"),
        (_bad_guard, "confirm", "'name' is not boolean"),
        (_dead_end, "limbo", "dead end"),
    ],
)
def test_bad_flow_names_file_and_node(
    tmp_path: Path, change: Any, node: str | None, message: str
) -> None:
    path = _write_variant(tmp_path, change)
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    text = str(caught.value)
    assert str(path) in text
    assert message in text
    if node is not None:
        assert caught.value.node == node
        assert f"node '{node}'" in text


def _unknown_red_flag(data: dict[str, Any]) -> None:
    data["nodes"]["q_testing"]["red_flags"] = ["no_testing", "bad_jokes"]


def _red_flag_off_question(data: dict[str, Any]) -> None:
    data["nodes"]["intro"]["red_flags"] = ["no_experience"]


@pytest.mark.parametrize(
    ("change", "node", "message"),
    [
        (_unknown_red_flag, "q_testing", "unknown red flag 'bad_jokes'"),
        (_red_flag_off_question, "intro", "red flags are raised at scored questions"),
    ],
)
def test_bad_interview_names_file_and_node(
    tmp_path: Path, change: Any, node: str, message: str
) -> None:
    path = _write_variant(tmp_path, change, INTERVIEW)
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert caught.value.node == node


def test_schema_error_names_node(tmp_path: Path) -> None:
    def bad_type(data: dict[str, Any]) -> None:
        data["nodes"]["ask_name"]["final"] = "sometimes"

    with pytest.raises(FlowError) as caught:
        load_flow(_write_variant(tmp_path, bad_type))
    assert caught.value.node == "ask_name"
    assert "final" in str(caught.value)


def test_not_yaml_and_empty_dir(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed", encoding="utf-8")
    with pytest.raises(FlowError, match="cannot read"):
        load_flow(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FlowError, match="no flow files"):
        load_flows(empty)


def test_duplicate_flow_ids(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(BOOKING.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(FlowError, match="used by another file"):
        load_flows(tmp_path)
