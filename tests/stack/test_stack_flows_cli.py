"""`voicectl flows check` and `voicectl flows graph`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dm.flows import load_flow
from dm.flows.loader import BUILTIN_DIR
from voicectl.__main__ import main

BOOKING = BUILTIN_DIR / "booking_mri.yaml"
SHIPPED = sorted(BUILTIN_DIR.glob("*.yaml"))


def booking() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(BOOKING.read_text("utf-8"))
    return data


def write_flow(directory: Path, name: str, data: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def unknown_target(flow: dict[str, Any]) -> None:
    flow["nodes"]["ask_exam"]["transitions"] = [{"to": "ask_weather"}]


def unreachable(flow: dict[str, Any]) -> None:
    flow["nodes"]["orphan"] = {
        "say": {"ru": "Алло?", "en": "Hello?"},
        "transitions": [{"to": "done"}],
    }


def unknown_slot(flow: dict[str, Any]) -> None:
    flow["nodes"]["ask_phone"]["collects"] = ["fax"]


def no_final(flow: dict[str, Any]) -> None:
    flow["nodes"]["done"]["final"] = False
    flow["nodes"]["done"]["transitions"] = [{"to": "ask_name"}]


def test_shipped_flows_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "check"]) == 0
    out = capsys.readouterr().out
    for path in SHIPPED:
        assert f"{path.name}: {path.stem} (" in out
    assert f"{len(SHIPPED)} flow file(s) ok" in out


def test_good_files_and_directories_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_flow(tmp_path, "copy.yaml", booking())
    assert main(["flows", "check", str(good), str(BUILTIN_DIR)]) == 0
    assert f"{1 + len(SHIPPED)} flow file(s) ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("breaks", "node", "message"),
    [
        (unknown_target, "ask_exam", "unknown transition target 'ask_weather'"),
        (unreachable, "orphan", "unreachable from start node 'ask_name'"),
        (unknown_slot, "ask_phone", "unknown slot 'fax'"),
        (no_final, None, "no final node"),
    ],
    ids=["unknown-target", "unreachable", "unknown-slot", "no-final"],
)
def test_a_broken_flow_fails_naming_file_and_node(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    breaks: Callable[[dict[str, Any]], None],
    node: str | None,
    message: str,
) -> None:
    flow = booking()
    breaks(flow)
    bad = write_flow(tmp_path, "bad.yaml", flow)
    assert main(["flows", "check", str(BOOKING), str(bad)]) == 1
    captured = capsys.readouterr()
    (error,) = [line for line in captured.err.splitlines() if line.startswith("error ")]
    assert str(bad) in error
    assert message in error
    if node is not None:
        assert f"node '{node}'" in error
    assert "booking_mri.yaml: booking_mri" in captured.out  # the good file is still reported
    assert "1 error(s) in 2 flow file(s)" in captured.err


def test_duplicate_flow_ids_in_a_directory_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_flow(tmp_path, "a.yaml", booking())
    write_flow(tmp_path, "b.yaml", booking())
    assert main(["flows", "check", str(tmp_path)]) == 1
    assert "flow id 'booking_mri' is used by another file too" in capsys.readouterr().err


def test_check_exits_non_zero_from_the_command_line(tmp_path: Path) -> None:
    flow = booking()
    unknown_slot(flow)
    bad = write_flow(tmp_path, "bad.yaml", flow)
    result = subprocess.run(
        [sys.executable, "-m", "voicectl", "flows", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"{bad}: node 'ask_phone': unknown slot 'fax'" in result.stderr


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_graph_has_every_node_and_edge(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = load_flow(path)
    assert main(["flows", "graph", flow.id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flowchart TD"
    assert f"    START([start]) --> {flow.start_node}" in lines
    for node in flow.nodes.values():
        shape = r'\(\(\("' if node.final else r'\["'
        assert any(re.match(rf"    {node.id}{shape}{node.id}", line) for line in lines), node.id
        for transition in node.transitions:
            edge = re.compile(rf'    {node.id} -->(\|"[^"]+"\| | ){transition.to}$')
            assert any(edge.match(line) for line in lines), f"{node.id} -> {transition.to}"
    edges = [line for line in lines if "-->" in line and not line.startswith("    START")]
    assert len(edges) == sum(len(node.transitions) for node in flow.nodes.values())
    finals = ",".join(node.id for node in flow.nodes.values() if node.final)
    assert f"    class {finals} final" in lines


def test_graph_labels_edges_with_their_guards(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "graph", str(BOOKING)]) == 0
    out = capsys.readouterr().out
    assert '    confirm -->|"confirmed = true"| done' in out
    assert '    ask_change -->|"change = phone"| ask_phone' in out
    assert "    ask_name --> ask_phone" in out


def test_graph_renames_node_ids_mermaid_reserves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = booking()
    flow["nodes"]["end"] = flow["nodes"].pop("done")
    flow["nodes"]["confirm"]["transitions"][0]["to"] = "end"
    path = write_flow(tmp_path, "ends.yaml", flow)
    assert main(["flows", "graph", str(path)]) == 0
    out = capsys.readouterr().out
    assert '    end_N((("end")))' in out
    assert '    confirm -->|"confirmed = true"| end_N' in out


def test_graph_of_an_unknown_flow_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "graph", "pizza_order"]) == 1
    assert "no shipped flow 'pizza_order' (shipped: booking_mri" in capsys.readouterr().err
