"""`voicectl flows check|graph`: validate flow files as dm will, draw one as Mermaid."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from dm.flows import Flow, FlowError, load_flow, load_flows
from dm.flows.loader import BUILTIN_DIR
from voicectl.mermaid import flow_to_mermaid


def check(paths: list[str], out: TextIO, err: TextIO) -> int:
    """Check files and directories of flows (default: the shipped ones); 1 if any is bad."""
    targets = [Path(p) for p in paths] or [BUILTIN_DIR]
    checked = failed = 0
    for target in targets:
        files = sorted(target.glob("*.yaml")) if target.is_dir() else [target]
        if not files:
            err.write(f"error {_shown(target)}: no flow files (*.yaml) found\n")
            failed += 1
            continue
        results = [_check_file(path, out, err) for path in files]
        checked += len(results)
        failed += results.count(False)
        if target.is_dir() and all(results):
            # Across files: flow ids must be unique in a directory dm loads.
            try:
                load_flows(target)
            except FlowError as exc:
                err.write(f"error {exc}\n")
                failed += 1
    if failed:
        err.write(f"{failed} error(s) in {checked} flow file(s)\n")
        return 1
    out.write(f"{checked} flow file(s) ok\n")
    return 0


def graph(ref: str, out: TextIO, err: TextIO) -> int:
    """Print the flow `ref` (a shipped flow's id, or a path) as a Mermaid flowchart."""
    try:
        flow = _find_flow(ref)
    except (FlowError, LookupError) as exc:
        err.write(f"error {exc}\n")
        return 1
    out.write(flow_to_mermaid(flow))
    return 0


def _check_file(path: Path, out: TextIO, err: TextIO) -> bool:
    try:
        flow = load_flow(path)
    except FlowError as exc:
        err.write(f"error {exc}\n")
        return False
    out.write(
        f"ok    {_shown(path)}: {flow.id} ({flow.kind}, {', '.join(flow.languages)},"
        f" {len(flow.nodes)} nodes)\n"
    )
    return True


def _find_flow(ref: str) -> Flow:
    path = Path(ref)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return load_flow(path)
    shipped = load_flows(BUILTIN_DIR)
    if ref not in shipped:
        raise LookupError(
            f"no shipped flow '{ref}' (shipped: {', '.join(sorted(shipped))}); or give a file path"
        )
    return shipped[ref]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
