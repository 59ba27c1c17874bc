"""The dialog corpus: callers' lines per node, the expected end and slots (README.md)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

CORPUS_DIR = Path(__file__).with_name("corpus")
# The day the corpus is written for; dm is pinned to it with DM_TODAY.
CORPUS_TODAY = date(2027, 3, 10)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expectation(Strict):
    outcome: Literal["completed", "transfer"]
    slots: dict[str, Any] = Field(default_factory=dict)
    # Interview transcripts: score bands per block, the exact red flags, no promises.
    scores: dict[str, tuple[float, float] | None] = Field(default_factory=dict)
    red_flags: list[str] | None = None
    no_promises: bool = False


class Dialog(Strict):
    id: str
    category: str
    note: str = ""
    region: str | None = None
    caller: dict[str, list[str]]
    expect: Expectation
    min_turns: int | None = None
    # Filled from the file.
    flow: str = ""
    lang: str = ""

    @property
    def minimum_turns(self) -> int:
        return self.min_turns or sum(len(lines) for lines in self.caller.values())


class CorpusFile(Strict):
    flow: str
    lang: str
    dialogs: list[Dialog]


def load_corpus(directory: Path = CORPUS_DIR, flow: str | None = None) -> list[Dialog]:
    """Every dialog of every file in `directory` (of `flow`, if given), ids unique."""
    dialogs: list[Dialog] = []
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text("utf-8"))
        if flow is not None and raw.get("flow") != flow:
            continue
        data = CorpusFile.model_validate(raw)
        of_file = {"flow": data.flow, "lang": data.lang}
        dialogs += [dialog.model_copy(update=of_file) for dialog in data.dialogs]
    seen: set[str] = set()
    for dialog in dialogs:
        if dialog.id in seen:
            raise ValueError(f"dialog id '{dialog.id}' appears twice in {directory}")
        seen.add(dialog.id)
    return dialogs


def resolve_date(written: str, today: date) -> str:
    """An expected date as ISO: "+N", a weekday ("fri"), "next-week-fri" or ISO itself."""
    if written.startswith("+"):
        return (today + timedelta(days=int(written[1:]))).isoformat()
    if written in WEEKDAYS:
        ahead = (WEEKDAYS.index(written) - today.weekday()) % 7 or 7
        return (today + timedelta(days=ahead)).isoformat()
    if written.startswith("next-week-") and written[10:] in WEEKDAYS:
        monday = today + timedelta(days=7 - today.weekday())
        return (monday + timedelta(days=WEEKDAYS.index(written[10:]))).isoformat()
    return date.fromisoformat(written).isoformat()


def expected_slots(dialog: Dialog, today: date) -> dict[str, Any]:
    slots = dict(dialog.expect.slots)
    if isinstance(slots.get("date"), str):
        slots["date"] = resolve_date(slots["date"], today)
    return slots
