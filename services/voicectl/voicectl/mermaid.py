"""A flow as a Mermaid flowchart: nodes, transitions labelled with their guards, finals marked."""

from __future__ import annotations

from dm.flows import Flow, Node, Transition

# Words Mermaid reads as syntax when they stand alone as a node id.
RESERVED_IDS = frozenset({"end", "graph", "flowchart", "subgraph", "style", "class", "click"})
START_ID = "START"  # flow node ids are lower case, so this never collides


def mermaid_id(node_id: str) -> str:
    # Upper case cannot occur in a flow's node ids, so the suffix cannot collide either.
    return f"{node_id}_N" if node_id in RESERVED_IDS else node_id


def guard_label(transition: Transition) -> str:
    """`confirmed = true and change = name`; empty for an unconditional transition."""
    parts = []
    for slot, condition in transition.when.items():
        if isinstance(condition, bool):
            parts.append(f"{slot} = {str(condition).lower()}")
        elif condition in ("filled", "empty"):
            parts.append(f"{slot} {condition}")
        else:
            parts.append(f"{slot} = {condition}")
    return " and ".join(parts)


def flow_to_mermaid(flow: Flow) -> str:
    lines = [
        "flowchart TD",
        f"    %% {flow.id}: {flow.kind} flow, languages {', '.join(flow.languages)},"
        f" replies {flow.reply_mode}",
        f"    {START_ID}([start]) --> {mermaid_id(flow.start_node)}",
    ]
    lines += [f"    {_node(node)}" for node in flow.nodes.values()]
    for node in flow.nodes.values():
        for transition in node.transitions:
            label = guard_label(transition)
            arrow = f' -->|"{_escape(label)}"| ' if label else " --> "
            lines.append(f"    {mermaid_id(node.id)}{arrow}{mermaid_id(transition.to)}")
    finals = [mermaid_id(node.id) for node in flow.nodes.values() if node.final]
    lines.append("    classDef final fill:#e3f4e1,stroke:#2e7d32,stroke-width:2px")
    lines.append(f"    class {','.join(finals)} final")
    return "\n".join(lines) + "\n"


def _node(node: Node) -> str:
    details = [node.id]
    if node.collects:
        details.append("collects: " + ", ".join(node.collects))
    if node.block:
        details.append(f"block: {node.block}")
    label = _escape("<br/>".join(details))
    if node.final:
        return f'{mermaid_id(node.id)}((("{label}")))'
    return f'{mermaid_id(node.id)}["{label}"]'


def _escape(text: str) -> str:
    return text.replace('"', "#quot;")
