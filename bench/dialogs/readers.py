"""dm's own date and time readers against dateparser's, on the dialog corpus.

    .venv/bin/python -m bench.dialogs.readers

The corpus is played through dm's pure engine, in process (no Redis, no LLM: the words
decide every turn, as with an LLM that understands nothing), with dm's readers
(`dm.extract.dates`, `dm.extract.times`), with dateparser reading the same utterances
(`search_dates`, the call's language, today pinned, future dates preferred), and with
dateparser only where dm's readers found nothing.
Everything else is dm's. The table gives task success, the date and time slots' accuracy,
and the turns the readers' answers took.
"""

from __future__ import annotations

import argparse
import time as clock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any
from unittest import mock

import dateparser
from dateparser.search import search_dates

from bench.dialogs.corpus import CORPUS_TODAY, Dialog, load_corpus
from bench.dialogs.play import Played, Turn, max_turns
from bench.dialogs.score import DialogScore, Summary, score_dialog
from dm import reading
from dm.engine import NO_PROPOSAL, apply_turn, decide, read_for, scripted_reply, start_state
from dm.extract import extract_date as dm_date
from dm.extract import extract_time as dm_time
from dm.flows import Flow, load_flows

LANGUAGES = {"ru": ["ru"], "en": ["en"]}


def play_in_process(flow: Flow, dialog: Dialog, today: date) -> Played:
    """The dialog through dm's engine alone, turn by turn as `bench.dialogs.play` does."""
    region = dialog.region or {"ru": "RU", "en": "US"}[dialog.lang]
    state = start_state(flow, dialog.id, dialog.lang, {}, 0.0, region=region)
    played = Played(dialog, dialog.id, state.greeting)
    asked: dict[str, int] = {}
    first_line = next(iter(dialog.caller.values()))[0]
    for number in range(1, max_turns(dialog) + 1):
        lines = dialog.caller.get(state.node)
        text = lines[min(asked.get(state.node, 0), len(lines) - 1)] if lines else first_line
        asked[state.node] = asked.get(state.node, 0) + 1
        found = read_for(flow, state, text, today)
        decision = decide(flow, state, found, NO_PROPOSAL)
        reply = scripted_reply(flow, state, decision, found)
        outcome = apply_turn(
            flow,
            state,
            turn_id=f"t{number}",
            text=text,
            decision=decision,
            reply=reply,
            backchannel=None,
            now=0.0,
            history_cap=8,
        )
        result: dict[str, Any] = {
            "node_before": state.node,
            "next_node": outcome.state.node,
            "slots": outcome.state.slots,
            "done": outcome.done,
            "outcome": outcome.state.outcome,
            "reply": reply,
            "understood_by": "rules",
            "fallback": False,
            "timings": {"total_ms": 0.0},
        }
        played.turns.append(Turn(text, result))
        state = outcome.state
        if outcome.done:
            break
    return played


def dateparser_readers(today: date) -> tuple[Callable[..., Any], Callable[..., Any]]:
    base = datetime.combine(today, time(12))

    def found(text: str, lang: str) -> datetime | None:
        settings = {"RELATIVE_BASE": base, "PREFER_DATES_FROM": "future"}
        hits = search_dates(text, languages=LANGUAGES.get(lang, ["en"]), settings=settings)
        moment = (
            hits[-1][1]
            if hits
            else dateparser.parse(text, languages=LANGUAGES.get(lang, ["en"]), settings=settings)
        )
        return moment if isinstance(moment, datetime) else None

    def extract_date(text: str, lang: str, _today: date) -> date | None:
        moment = found(text, lang)
        return moment.date() if moment is not None else None

    def extract_time(text: str, lang: str, *, asked: bool = False) -> time | None:
        moment = found(text, lang)
        # dateparser gives noon when no time was said (the base's hour).
        if moment is None or (moment.time() == time(12) and not _says_noon(text)):
            return None
        return moment.time().replace(second=0, microsecond=0)

    return extract_date, extract_time


def _fallback(
    their_date: Callable[..., Any], their_time: Callable[..., Any]
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """dm's readers, and dateparser's where dm's read nothing."""
    ours_date, ours_time = dm_date, dm_time

    def extract_date(text: str, lang: str, today: date) -> date | None:
        found: date | None = ours_date(text, lang, today)
        return found if found is not None else their_date(text, lang, today)

    def extract_time(text: str, lang: str, *, asked: bool = False) -> time | None:
        found: time | None = ours_time(text, lang, asked=asked)
        return found if found is not None else their_time(text, lang, asked=asked)

    return extract_date, extract_time


def _says_noon(text: str) -> bool:
    return any(word in text.lower() for word in ("12", "noon", "полдень", "двенадцат"))


@contextmanager
def readers(kind: str, today: date) -> Iterator[None]:
    if kind == "dm":
        yield
        return
    extract_date, extract_time = dateparser_readers(today)
    if kind == "dm, then dateparser":
        extract_date, extract_time = _fallback(extract_date, extract_time)
    with (
        mock.patch.object(reading, "extract_date", extract_date),
        mock.patch.object(reading, "extract_time", extract_time),
    ):
        yield


def row(title: str, scores: list[DialogScore], seconds: float) -> str:
    summary = Summary()
    for score in scores:
        summary.add(score)

    def share(slot: str) -> str:
        hits = [s.slot_hits[slot] for s in scores if slot in s.slot_hits]
        return f"{100 * sum(hits) / len(hits):.1f} %" if hits else "-"

    success = 100 * summary.successes / summary.dialogs
    per_turn = 1000 * seconds / max(summary.turns, 1)
    return (
        f"| {title} | {summary.dialogs} | {success:.1f} % | {share('date')} | {share('time')} "
        f"| {per_turn:.2f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--today", type=date.fromisoformat, default=CORPUS_TODAY)
    args = parser.parse_args()
    flow = load_flows()["booking_mri"]
    dialogs = load_corpus(flow="booking_mri")
    print(f"{len(dialogs)} booking dialogs, today {args.today}, dm's engine in process")
    print("\n| readers | dialogs | task success | date right | time right | per turn |")
    print("|---|---|---|---|---|---|")
    for kind in ("dm", "dateparser", "dm, then dateparser"):
        with readers(kind, args.today):
            started = clock.perf_counter()
            scores = [
                score_dialog(play_in_process(flow, d, args.today), args.today) for d in dialogs
            ]
            print(row(kind, scores, clock.perf_counter() - started), flush=True)


if __name__ == "__main__":
    main()
