"""Play the dialog corpus against dm and score it.

    .venv/bin/python -m bench.dialogs                      # starts Redis, llm-local (embedded), dm
    .venv/bin/python -m bench.dialogs --rules both         # the rules path on, then off
    .venv/bin/python -m bench.dialogs --llm instant        # an instant LLM: dm's own reading only
    .venv/bin/python -m bench.dialogs --flow interview_python_dev   # the interview transcripts
    .venv/bin/python -m bench.dialogs --url http://127.0.0.1:8080   # a running stack
                                                           # (started with DM_TODAY=2027-03-10)
    ... --only ru-phone --failures                         # some dialogs; print each failure
    ... --corpus bench/dialogs/heldout3                    # the sealed held-out set

One caller at a time. See bench/dialogs/README.md for the corpus and how it is played.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx

from bench.dialogs.corpus import CORPUS_DIR, CORPUS_TODAY, Dialog, load_corpus
from bench.dialogs.play import play
from bench.dialogs.score import TARGETS, DialogScore, failures, report, score_dialog
from bench.processes import dm, instant_llm, llm_local, machine, redis


@contextlib.contextmanager
def llm_service(kind: str) -> Iterator[str]:
    if kind == "embedded":
        with llm_local() as url:
            yield url
    elif kind == "instant":
        with instant_llm() as url:
            yield url
    else:
        yield kind


def run(url: str, dialogs: list[Dialog], today: date) -> list[DialogScore]:
    run_id = f"corpus-{time.time_ns():x}"
    scores = []
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for number, dialog in enumerate(dialogs, start=1):
            scores.append(score_dialog(play(client, dialog, run_id), today))
            if number % 25 == 0:
                print(f"  ... {number}/{len(dialogs)} dialogs", file=sys.stderr, flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running dm or gateway (else the bench starts its own)")
    parser.add_argument("--llm", default="embedded", help="embedded | instant | a base URL")
    parser.add_argument("--rules", choices=["on", "off", "both"], default="on")
    parser.add_argument("--only", default="", help="dialog ids or categories starting so")
    parser.add_argument("--failures", action="store_true", help="print every failed dialog")
    parser.add_argument("--today", type=date.fromisoformat, default=CORPUS_TODAY)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="a folder of dialogs")
    parser.add_argument("--flow", default="booking_mri", help="booking_mri or interview_python_dev")
    args = parser.parse_args()

    dialogs = [
        d
        for d in load_corpus(args.corpus, flow=args.flow)
        if d.id.startswith(args.only) or d.category.startswith(args.only)
    ]
    print(f"machine: {machine()}")
    print(
        f"corpus: {len(dialogs)} dialogs of {args.flow}, today {args.today}, one caller at a time"
    )
    runs: list[tuple[str, list[DialogScore]]] = []
    if args.url:
        runs.append((f"stack at {args.url}", run(args.url, dialogs, args.today)))
    else:
        modes = ["on", "off"] if args.rules == "both" else [args.rules]
        with redis() as redis_url, llm_service(args.llm) as llm_url:
            for mode in modes:
                env = {"DM_TODAY": args.today.isoformat(), "DM_RULES": mode}
                with dm(redis_url, llm_url, **env) as url:
                    scores = run(url, dialogs, args.today)
                runs.append((f"rules path {mode}, LLM {args.llm}", scores))
    for title, scores in runs:
        print(f"\n### {title}\n")
        print(report(scores))
        if args.failures:
            print(failures(scores))
    print("\ntargets: " + ", ".join(f"{name} {goal}" for name, goal in TARGETS.items()))


if __name__ == "__main__":
    main()
