"""`voicectl` command line: `stack`, `call`, `flows check`, `flows graph`, `report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voicectl.console import Console


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicectl", description="Run the local voice-dm stack, call it, check and draw flows."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "stack",
        help="run Redis, llm-local, dm and the gateway in the foreground (what `make run` does)",
        description="Start the whole local stack on the contract's ports (settings from the "
        "environment and .env); Ctrl-C or SIGTERM stops all of it.",
    )

    call = commands.add_parser(
        "call",
        help="talk to the running gateway as a caller",
        description="Be the caller on the gateway's WebSocket: type what the caller says; "
        "/end hangs up, Ctrl-C disconnects (the call can be resumed with --call-id).",
    )
    call.add_argument("--url", default="ws://127.0.0.1:8080", help="gateway base URL")
    call.add_argument("--flow", default="booking_mri", help="flow id (default: booking_mri)")
    call.add_argument("--lang", default="ru", help="language of the call (default: ru)")
    call.add_argument("--call-id", help="call id to create or resume (default: a new one)")
    call.add_argument("--token", help="API key, when the gateway has GATEWAY_API_KEYS")
    call.add_argument(
        "--script", type=Path, metavar="FILE", help="say these lines (one per line), then hang up"
    )

    flows = commands.add_parser("flows", help="check flow files, draw a flow")
    flow_commands = flows.add_subparsers(dest="flows_command", required=True, metavar="COMMAND")
    check = flow_commands.add_parser(
        "check",
        help="validate flow files as dm does at start-up",
        description="Validate flow files (files or directories; default: the shipped flows). "
        "Exits 1 naming the file and node of each error.",
    )
    check.add_argument("paths", nargs="*", metavar="PATH")
    graph = flow_commands.add_parser(
        "graph",
        help="print a flow as a Mermaid diagram",
        description="Print FLOW (a shipped flow's id, or a path to a flow file) as a Mermaid "
        "flowchart: nodes, transitions labelled with their guards, final nodes marked.",
    )
    graph.add_argument("flow", metavar="FLOW")

    report = commands.add_parser(
        "report",
        help="print an interview call's report",
        description="Print the report of interview call CALL_ID from the gateway: per question "
        "the answer, its score, the candidate's words behind it and any red flag.",
    )
    report.add_argument("call_id", metavar="CALL_ID")
    report.add_argument("--url", default="http://127.0.0.1:8080", help="gateway base URL")
    report.add_argument("--token", help="API key, when the gateway has GATEWAY_API_KEYS")
    report.add_argument("--json", action="store_true", help="the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "stack":
        from voicectl.stack import run_stack

        return run_stack(Console(sys.stdout))
    if args.command == "call":
        from voicectl.call import CallOptions, new_call_id, run_call

        if args.script is not None and not args.script.is_file():
            parser.error(f"--script: no such file: {args.script}")
        options = CallOptions(
            url=args.url,
            flow=args.flow,
            lang=args.lang,
            call_id=args.call_id or new_call_id(),
            token=args.token,
            script=args.script,
        )
        return run_call(options, Console(sys.stdout))
    if args.command == "report":
        from voicectl.report import run_report

        return run_report(
            args.url, args.call_id, args.token, as_json=args.json, out=sys.stdout, err=sys.stderr
        )
    from voicectl import flows_cli

    if args.flows_command == "check":
        return flows_cli.check(args.paths, sys.stdout, sys.stderr)
    return flows_cli.graph(args.flow, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
