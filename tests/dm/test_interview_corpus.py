"""The interview corpus, and the rubric's agreement with it (bench/dialogs/interview.py)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from dm.flows import load_flow
from dm.flows.loader import BUILTIN_DIR

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "bench" / "dialogs" / "corpus"
FLOW = load_flow(BUILTIN_DIR / "interview_python_dev.yaml")
CATEGORIES = {"strong", "average", "weak", "evasive", "off_topic", "injection"}


def transcripts() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(CORPUS.glob("interview_*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["flow"] == FLOW.id
        found += [(data["lang"], dialog) for dialog in data["dialogs"]]
    return found


def test_the_corpus_covers_both_languages_and_every_kind_of_candidate() -> None:
    found = transcripts()
    assert len(found) >= 30
    kinds = Counter((lang, dialog["category"]) for lang, dialog in found)
    for lang in ("ru", "en"):
        assert {category for (of, category) in kinds if of == lang} == CATEGORIES
    for _, dialog in found:
        assert set(dialog["caller"]) == set(FLOW.nodes) - {"done", "transfer"}, dialog["id"]
        expect = dialog["expect"]
        assert expect["outcome"] == "completed"
        assert set(expect["scores"]) == set(FLOW.blocks), dialog["id"]
        assert set(expect["red_flags"]) <= set(FLOW.red_flags), dialog["id"]
        assert expect.get("no_promises", False) == (dialog["category"] == "injection")


def test_the_rubric_meets_the_targets_on_the_corpus() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.dialogs.interview"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "red flags on strong candidates 0 (target 0)" in run.stdout
    assert run.stdout.rstrip().endswith(": met")
