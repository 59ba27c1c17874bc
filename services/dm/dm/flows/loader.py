"""Load flow files and refuse bad ones loudly, naming the file and the node."""

from __future__ import annotations

import re
from collections import deque
from datetime import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from dm.flows.model import Flow, Node

PLACEHOLDER = re.compile(r"\{(\w+)\}")
NODE_ID = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
BUILTIN_DIR = Path(__file__).parent / "data"


class FlowError(ValueError):
    """A flow file that cannot be served, with where and why."""

    def __init__(self, path: Path | str, message: str, node: str | None = None) -> None:
        where = f"{path}: node '{node}'" if node else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.node = node


def load_flows(directory: Path | str = BUILTIN_DIR) -> dict[str, Flow]:
    """Every `*.yaml` flow in `directory`, by id."""
    flows: dict[str, Flow] = {}
    paths = sorted(Path(directory).glob("*.yaml"))
    if not paths:
        raise FlowError(directory, "no flow files (*.yaml) found")
    for path in paths:
        flow = load_flow(path)
        if flow.id in flows:
            raise FlowError(path, f"flow id '{flow.id}' is used by another file too")
        flows[flow.id] = flow
    return flows


def load_flow(path: Path | str) -> Flow:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(path, f"cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise FlowError(path, "a flow file must be a mapping")
    nodes = raw.get("nodes")
    if isinstance(nodes, dict):
        raw["nodes"] = {
            key: {**value, "id": key} if isinstance(value, dict) else value
            for key, value in nodes.items()
        }
    try:
        flow = Flow.model_validate(raw)
    except ValidationError as exc:
        raise _describe(path, exc) from None
    check_flow(flow, path)
    return flow


def _describe(path: Path, exc: ValidationError) -> FlowError:
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    node = loc[1] if len(loc) > 1 and loc[0] == "nodes" else None
    field = ".".join(loc[2:] if node else loc)
    return FlowError(path, f"{field}: {err['msg']}", node)


def check_flow(flow: Flow, path: Path | str) -> None:
    """Graph and reference checks pydantic cannot express."""
    if flow.start_node not in flow.nodes:
        raise FlowError(path, f"start_node '{flow.start_node}' is not a node")
    for node in flow.nodes.values():
        _check_node(flow, node, path)
    finals = [n.id for n in flow.nodes.values() if n.final and n.outcome == "completed"]
    if not finals:
        raise FlowError(path, "no final node: a call could never end")
    transfers = [n.id for n in flow.nodes.values() if n.final and n.outcome == "transfer"]
    if len(transfers) != 1:
        raise FlowError(
            path, "one final node needs 'outcome: transfer': every call must reach a person"
        )
    reachable = _reachable(flow, [flow.start_node])
    for node_id in flow.nodes:
        if node_id not in reachable:
            raise FlowError(path, f"unreachable from start node '{flow.start_node}'", node_id)
    # The hand-over to a person ends any call; a step must also lead to a completed one.
    ends = _reaching(flow, finals)
    for node_id, node in flow.nodes.items():
        if node_id not in ends and not node.final:
            raise FlowError(path, "dead end: no final node can be reached from here", node_id)
    if flow.kind == "interview" and not flow.blocks:
        raise FlowError(path, "an interview flow needs at least one competency block")
    for name, spec in flow.slots.items():
        if spec.type == "enum":
            _check_enum(flow, name, path)
        _check_texts(flow, path, f"slot '{name}'", spec.out_of_range, spec.explain)
        if spec.between is not None:
            _check_between(spec.between, name, path)
    _check_texts(flow, path, "flow", flow.changed, flow.no_answer, flow.acknowledge)
    for answer in flow.answers:
        _check_texts(flow, path, f"answer '{answer.stems[0]}'", answer.say)


def _check_texts(flow: Flow, path: Path | str, where: str, *texts: dict[str, str]) -> None:
    """Optional texts: absent, or given in every language of the flow."""
    for text in texts:
        for lang in flow.languages:
            if text and not text.get(lang, "").strip():
                raise FlowError(path, f"{where}: a text has no '{lang}' version")


def _check_between(between: tuple[str, str], name: str, path: Path | str) -> None:
    try:
        start, end = (time.fromisoformat(value) for value in between)
    except ValueError:
        raise FlowError(path, f"slot '{name}': between takes two HH:MM times") from None
    if start >= end:
        raise FlowError(path, f"slot '{name}': between must run from earlier to later")


def _check_node(flow: Flow, node: Node, path: Path | str) -> None:
    if not NODE_ID.match(node.id):
        raise FlowError(path, "node ids are lower_snake_case, 1-48 characters", node.id)
    for transition in node.transitions:
        if transition.to not in flow.nodes:
            raise FlowError(path, f"unknown transition target '{transition.to}'", node.id)
        for slot in transition.reset:
            if slot not in flow.slots:
                raise FlowError(path, f"unknown slot '{slot}' in a transition reset", node.id)
        for slot, condition in transition.when.items():
            _check_guard(flow, node, slot, condition, path)
    if node.final and node.transitions:
        raise FlowError(path, "a final node has no transitions", node.id)
    if not node.final and not node.transitions:
        raise FlowError(path, "a node that is not final needs a transition", node.id)
    for slot in [*node.collects, *node.accepts]:
        if slot not in flow.slots:
            raise FlowError(path, f"unknown slot '{slot}'", node.id)
    if node.after_correction is not None and node.after_correction not in flow.nodes:
        raise FlowError(path, f"unknown after_correction node '{node.after_correction}'", node.id)
    for field_name in ("say", "reask", "partial"):
        texts: dict[str, str] = getattr(node, field_name)
        if field_name != "say" and not texts:
            continue
        for lang in flow.languages:
            if not texts.get(lang, "").strip():
                raise FlowError(path, f"no '{field_name}' text for language '{lang}'", node.id)
            for slot in PLACEHOLDER.findall(texts[lang]):
                if slot not in flow.slots and not (field_name == "partial" and slot == "digits"):
                    raise FlowError(
                        path, f"unknown slot '{{{slot}}}' in {field_name}[{lang}]", node.id
                    )
    if flow.kind == "interview" and node.block is not None and node.block not in flow.blocks:
        raise FlowError(path, f"unknown competency block '{node.block}'", node.id)
    if flow.kind == "booking" and node.block is not None:
        raise FlowError(path, "competency blocks belong to interview flows", node.id)
    if node.red_flags is not None and node.block is None:
        raise FlowError(path, "red flags are raised at scored questions (with a block)", node.id)
    for flag in node.red_flags or ():
        if flag not in flow.red_flags:
            raise FlowError(path, f"unknown red flag '{flag}'", node.id)


def _check_guard(
    flow: Flow, node: Node, slot: str, condition: bool | str, path: Path | str
) -> None:
    spec = flow.slots.get(slot)
    if spec is None:
        raise FlowError(path, f"unknown slot '{slot}' in a transition guard", node.id)
    if isinstance(condition, bool):
        if spec.type != "boolean":
            raise FlowError(path, f"guard {slot}={condition}: '{slot}' is not boolean", node.id)
    elif condition not in ("filled", "empty") and (
        spec.type != "enum" or condition not in spec.values
    ):
        raise FlowError(
            path,
            f"guard {slot}={condition!r}: not 'filled', 'empty' or a value of the slot",
            node.id,
        )


def _check_enum(flow: Flow, name: str, path: Path | str) -> None:
    spec = flow.slots[name]
    if not spec.values:
        raise FlowError(path, f"enum slot '{name}' has no values")
    for value in spec.values:
        for lang in flow.languages:
            if not spec.labels.get(value, {}).get(lang):
                raise FlowError(path, f"enum slot '{name}': no {lang} label for '{value}'")


def _reachable(flow: Flow, starts: list[str]) -> set[str]:
    seen = set(starts)
    queue = deque(starts)
    while queue:
        for target in flow.targets_of(flow.nodes[queue.popleft()]):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _reaching(flow: Flow, goals: list[str]) -> set[str]:
    """Nodes from which one of `goals` can be reached."""
    parents: dict[str, list[str]] = {node_id: [] for node_id in flow.nodes}
    for node in flow.nodes.values():
        for target in node.targets:
            parents[target].append(node.id)
    seen = set(goals)
    queue = deque(goals)
    while queue:
        for parent in parents[queue.popleft()]:
            if parent not in seen:
                seen.add(parent)
                queue.append(parent)
    return seen
