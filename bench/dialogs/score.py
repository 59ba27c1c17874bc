"""Score played dialogs: task success, slot accuracy, turns, re-asks, transfers, speed."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bench.dialogs.corpus import expected_slots
from bench.dialogs.interview import in_band
from bench.dialogs.play import Played
from bench.processes import percentile
from dm.interview.promises import makes_promise

TARGETS = {
    "task success": ">= 97 %",
    "slot accuracy": ">= 99 %",
    "turns / minimum": "<= 1.2",
    "longest / minimum": "<= 2.0",
    "asked for a person, transferred": "100 %",
}


def same_value(slot: str, expected: Any, got: Any) -> bool:
    if slot == "name" and isinstance(expected, str) and isinstance(got, str):
        return _name_key(expected) == _name_key(got)
    return bool(expected == got)


def _name_key(name: str) -> str:
    return " ".join(re.findall(r"\w+", name.casefold().replace("ё", "е")))


@dataclass
class DialogScore:
    played: Played
    success: bool
    slot_hits: dict[str, bool]  # expected slot -> right at the end
    turns: int
    minimum: int
    reasks: int
    rules_turns: int
    fallbacks: int
    turn_ms: list[float]
    why: str  # for a failure: what went wrong

    @property
    def category(self) -> str:
        return self.played.dialog.category


def score_dialog(played: Played, today: date) -> DialogScore:
    dialog = played.dialog
    expected = expected_slots(dialog, today)
    results = [turn.result for turn in played.turns]
    slots = results[-1]["slots"] if results else {}
    hits = {name: same_value(name, value, slots.get(name)) for name, value in expected.items()}
    outcome_ok = played.outcome == dialog.expect.outcome
    why = _interview_misses(played) if dialog.expect.scores else ""
    if played.error:
        why = played.error
    elif not played.done:
        why = f"not finished after {len(results)} turns (stuck at {results[-1]['next_node']})"
    elif not outcome_ok:
        why = f"ended {played.outcome}, expected {dialog.expect.outcome}"
    elif why:
        pass
    elif not all(hits.values()):
        wrong = [f"{n}={slots.get(n)!r} (want {expected[n]!r})" for n, ok in hits.items() if not ok]
        why = "wrong " + ", ".join(wrong)
    return DialogScore(
        played=played,
        success=not why,
        slot_hits=hits,
        turns=len(results),
        minimum=dialog.minimum_turns,
        reasks=sum(1 for r in results if not r["done"] and r["next_node"] == r["node_before"]),
        rules_turns=sum(1 for r in results if r.get("understood_by") == "rules"),
        fallbacks=sum(1 for r in results if r.get("fallback")),
        turn_ms=[r["timings"]["total_ms"] for r in results],
        why=why,
    )


def _interview_misses(played: Played) -> str:
    """What of an interview's expectation the call missed: block scores outside their
    band, red flags other than expected, a promise in any reply."""
    expect = played.dialog.expect
    scores = played.final.get("scores", {})
    misses = [
        f"{block}={scores.get(block)} (band {band})"
        for block, band in expect.scores.items()
        if not in_band(scores.get(block), band)
    ]
    flags = set(played.final.get("red_flags", []))
    if expect.red_flags is not None and flags != set(expect.red_flags):
        misses.append(f"red flags {sorted(flags)} (want {sorted(expect.red_flags)})")
    lang = played.dialog.lang
    if any(makes_promise(turn.result["reply"], lang) for turn in played.turns):
        misses.append("a reply promised something")
    return "missed " + ", ".join(misses) if misses else ""


@dataclass
class Summary:
    dialogs: int = 0
    successes: int = 0
    slots: int = 0
    slot_hits: int = 0
    turns: int = 0
    reasks: int = 0
    rules_turns: int = 0
    fallbacks: int = 0
    transfers: int = 0
    ratios: list[float] = field(default_factory=list)  # turns / minimum, completed successes
    turn_ms: list[float] = field(default_factory=list)

    def add(self, score: DialogScore) -> None:
        self.dialogs += 1
        self.successes += score.success
        self.slots += len(score.slot_hits)
        self.slot_hits += sum(score.slot_hits.values())
        self.turns += score.turns
        self.reasks += score.reasks
        self.rules_turns += score.rules_turns
        self.fallbacks += score.fallbacks
        self.transfers += score.played.outcome == "transfer"
        if score.success and score.played.outcome == "completed":
            self.ratios.append(score.turns / score.minimum)
        self.turn_ms += score.turn_ms

    def row(self, title: str) -> str:
        ratio = sum(self.ratios) / len(self.ratios) if self.ratios else float("nan")
        cells = [
            title,
            str(self.dialogs),
            _share(self.successes, self.dialogs),
            _share(self.slot_hits, self.slots),
            f"{ratio:.2f}",
            f"{max(self.ratios, default=float('nan')):.2f}",
            _share(self.reasks, self.turns),
            _share(self.transfers, self.dialogs),
            _share(self.rules_turns, self.turns),
            str(self.fallbacks),
            f"{percentile(self.turn_ms, 0.5):.0f}",
            f"{percentile(self.turn_ms, 0.95):.0f}",
        ]
        return "| " + " | ".join(cells) + " |"


HEADER = (
    "| scope | dialogs | task success | slot accuracy | turns / min | longest / min "
    "| re-ask rate | transfer rate | decided by rules | fallbacks | turn p50 ms | turn p95 ms |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def report(scores: Iterable[DialogScore]) -> str:
    scores = list(scores)
    overall = Summary()
    by_lang: dict[str, Summary] = defaultdict(Summary)
    by_category: dict[str, Summary] = defaultdict(Summary)
    slot_types: dict[str, list[bool]] = defaultdict(list)
    for score in scores:
        overall.add(score)
        by_lang[score.played.dialog.lang].add(score)
        by_category[score.category].add(score)
        for name, hit in score.slot_hits.items():
            slot_types[name].append(hit)
    lines = [HEADER, overall.row("**all**")]
    lines += [summary.row(lang) for lang, summary in sorted(by_lang.items())]
    lines += [summary.row(category) for category, summary in sorted(by_category.items())]
    lines += ["", "| slot | checked | right |", "|---|---|---|"]
    lines += [
        f"| {name} | {len(hits)} | {_share(sum(hits), len(hits))} |"
        for name, hits in sorted(slot_types.items())
    ]
    person = [s for s in scores if s.category == "transfer_request"]
    transferred = sum(1 for s in person if s.played.outcome == "transfer")
    lines += ["", f"asked for a person, transferred: {transferred} of {len(person)}"]
    return "\n".join(lines)


def failures(scores: Iterable[DialogScore]) -> str:
    """Each failed dialog: why, then the turns as played."""
    out = []
    for score in scores:
        if score.success:
            continue
        played = score.played
        out.append(f"\n## {played.dialog.id} ({played.dialog.category}): {score.why}")
        for turn in played.turns:
            r = turn.result
            out.append(
                f"  [{r['node_before']} -> {r['next_node']}] caller: {turn.text!r}\n"
                f"      agent: {r['reply']!r}  ({r.get('understood_by')}"
                f"{', fallback ' + str(r['fallback_reason']) if r.get('fallback') else ''})"
            )
    return "\n".join(out)
