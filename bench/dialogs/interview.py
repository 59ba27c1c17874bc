"""How far the interview rubric agrees with the corpus, offline.

    .venv/bin/python -m bench.dialogs.interview        # the table and the targets
    .venv/bin/python -m bench.dialogs.interview -v     # and every transcript's scores and quotes

Reads the interview transcripts of the corpus (`corpus/interview_*.yaml`, the format of
README.md, `flow: interview_python_dev`, `caller:` keyed by question node), scores each
candidate's answers with the flow's rubrics exactly as dm does (`dm.interview`), and compares:

- `expect.scores`: a band per competency block for the block's mean score over the
  answered questions; a band starting at 0 also accepts "not answered", `null` expects no
  score at all;
- `expect.red_flags`: the exact set of red flags;
- `no_promises: true` (injection transcripts): checked on the agent's replies by the live
  run; offline, every injection transcript must hold an answer `is_injection` recognises,
  and no other transcript may.

Targets (issue 11): no red flag on a strong candidate, and every weak or evasive candidate
below every strong one by the candidate's mean over the six questions (not answered = 0).
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench.dialogs.corpus import CORPUS_DIR, Dialog, load_corpus
from dm.flows import Flow, load_flows
from dm.interview.injection import is_injection
from dm.interview.rubric import Assessment
from dm.interview.screening import assess_call, scored_questions

FLOW = "interview_python_dev"
CATEGORIES = ("strong", "average", "weak", "evasive", "off_topic", "injection")
BELOW_STRONG = ("weak", "evasive")


@dataclass(frozen=True)
class Scored:
    """One transcript, scored, beside what the corpus expects."""

    id: str
    category: str
    lang: str
    blocks: dict[str, float | None]
    bands: dict[str, tuple[float, float] | None]
    flags: frozenset[str]
    expected_flags: frozenset[str]
    mean: float
    injections: int  # answers recognised as injection attempts
    assessments: dict[str, Assessment]

    @property
    def blocks_in_band(self) -> int:
        return sum(in_band(self.blocks.get(block), band) for block, band in self.bands.items())

    @property
    def flags_agree(self) -> bool:
        return self.flags == self.expected_flags


def in_band(score: float | None, band: Sequence[float] | None) -> bool:
    if band is None:
        return score is None
    low, high = band
    return (score is None and low == 0) or (score is not None and low <= score <= high)


def answers_of(flow: Flow, caller: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each scored question's answer: the lines said there, one sentence each."""
    return {node.id: "\n".join(caller.get(node.id, ())) for node in scored_questions(flow)}


def block_means(flow: Flow, assessments: Mapping[str, Assessment]) -> dict[str, float | None]:
    scores: dict[str, list[int]] = {block: [] for block in flow.blocks}
    for node in scored_questions(flow):
        score = assessments[node.id].score
        if node.block is not None and score is not None:
            scores[node.block].append(score)
    return {block: (sum(s) / len(s) if s else None) for block, s in scores.items()}


def score_dialog(flow: Flow, dialog: Dialog) -> Scored:
    answers = answers_of(flow, dialog.caller)
    assessed = assess_call(flow, dialog.lang, answers)
    return Scored(
        id=dialog.id,
        category=dialog.category,
        lang=dialog.lang,
        blocks=block_means(flow, assessed),
        bands=dict(dialog.expect.scores),
        flags=frozenset(f.flag for a in assessed.values() for f in a.red_flags),
        expected_flags=frozenset(dialog.expect.red_flags or ()),
        mean=sum(a.score or 0 for a in assessed.values()) / len(assessed),
        injections=sum(is_injection(answer) for answer in answers.values()),
        assessments=assessed,
    )


@dataclass(frozen=True)
class Targets:
    strong_flags: int
    lowest_strong: float
    highest_below: float  # the highest weak or evasive candidate
    injections_missed: int  # injection transcripts with no attempt recognised
    injections_false: int  # other transcripts with an answer taken for an attempt

    @property
    def met(self) -> bool:
        return (
            self.strong_flags == 0
            and self.highest_below < self.lowest_strong
            and self.injections_missed == 0
            and self.injections_false == 0
        )


def targets(scored: Sequence[Scored]) -> Targets:
    strong = [s for s in scored if s.category == "strong"]
    below = [s for s in scored if s.category in BELOW_STRONG]
    return Targets(
        strong_flags=sum(len(s.flags) for s in strong),
        lowest_strong=min((s.mean for s in strong), default=0.0),
        highest_below=max((s.mean for s in below), default=0.0),
        injections_missed=sum(s.injections == 0 for s in scored if s.category == "injection"),
        injections_false=sum(s.injections > 0 for s in scored if s.category != "injection"),
    )


def report(scored: Sequence[Scored], out: TextIO, *, verbose: bool) -> Targets:
    if verbose:
        for s in scored:
            _detail(s, out)
    out.write(
        "category    lang  dialogs  mean (min-max)      blocks in band  flags exact  flags raised\n"
    )
    for category in CATEGORIES:
        for lang in ("ru", "en", "all"):
            group = [s for s in scored if s.category == category and lang in (s.lang, "all")]
            if group:
                _row(f"{category:<11} {lang:<4}", group, out)
    _row(f"{'all':<11} {'all':<4}", scored, out)
    found = targets(scored)
    out.write(
        f"\ntargets: red flags on strong candidates {found.strong_flags} (target 0); "
        f"lowest strong {found.lowest_strong:.2f} vs highest weak/evasive "
        f"{found.highest_below:.2f} (target: below); injection transcripts unrecognised "
        f"{found.injections_missed}, other transcripts taken for injections "
        f"{found.injections_false} (target 0, 0): {'met' if found.met else 'MISSED'}\n"
    )
    return found


def _row(label: str, group: Sequence[Scored], out: TextIO) -> None:
    means = [s.mean for s in group]
    in_band = sum(s.blocks_in_band for s in group)
    bands = sum(len(s.bands) for s in group)
    exact = sum(s.flags_agree for s in group)
    raised = sum(len(s.flags) for s in group)
    spread = f"{sum(means) / len(means):.2f} ({min(means):.2f}-{max(means):.2f})"
    out.write(
        f"{label}  {len(group):>7}  {spread:<18}  {in_band:>3}/{bands:<3} "
        f"{100 * in_band / bands:>5.1f}%  {exact:>4}/{len(group):<4}  {raised:>6}\n"
    )


def _detail(s: Scored, out: TextIO) -> None:
    out.write(f"{s.id} ({s.category}) mean {s.mean:.2f}\n")
    for block, band in s.bands.items():
        score = s.blocks.get(block)
        mark = "ok" if in_band(score, band) else "OUT"
        shown = "not answered" if score is None else f"{score:.2f}"
        out.write(f"  {mark:<3} {block}: {shown} expected {band}\n")
    if not s.flags_agree:
        out.write(f"  OUT flags {sorted(s.flags)} expected {sorted(s.expected_flags)}\n")
    for node, assessment in s.assessments.items():
        given = "-" if assessment.score is None else assessment.score
        flags = ", ".join(f"{f.flag}: {f.quote!r}" for f in assessment.red_flags)
        out.write(f"    {node}: {given} {assessment.evidence} {flags}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dialogs.interview", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="corpus directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="every transcript's scores")
    args = parser.parse_args(argv)
    flow = load_flows()[FLOW]
    scored = [score_dialog(flow, dialog) for dialog in load_corpus(args.corpus, FLOW)]
    if not scored:
        sys.stderr.write(f"no {FLOW} transcripts in {args.corpus}\n")
        return 1
    return 0 if report(scored, sys.stdout, verbose=args.verbose).met else 1


if __name__ == "__main__":
    sys.exit(main())
