"""Fill a flow text's `{slot}` placeholders with how each value is said."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Any

from dm.extract import format_date, format_phone, format_time
from dm.flows import Flow
from dm.flows.loader import PLACEHOLDER

_SENTENCE = re.compile(r"[^.!?…]+[.!?…]*\s*")


def say_slot(flow: Flow, name: str, value: Any, lang: str, region: str = "") -> str:
    spec = flow.slots[name]
    if spec.type == "enum":
        return spec.labels.get(str(value), {}).get(lang, str(value))
    if spec.type == "phone":
        return format_phone(str(value), region)
    if spec.type == "date":
        return format_date(date.fromisoformat(str(value)), lang)
    if spec.type == "time":
        return format_time(time.fromisoformat(str(value)), lang)
    return str(value)


def render(text: str, flow: Flow, slots: dict[str, Any], lang: str, region: str = "") -> str:
    """The text with slot values spoken; a sentence naming an unknown slot value is left out.

    `region` is the call's: a phone number of that country is read in its national form.
    """
    if "{" not in text:
        return text
    kept = []
    for sentence in _SENTENCE.findall(text):
        names = PLACEHOLDER.findall(sentence)
        if any(slots.get(name) is None for name in names):
            continue
        kept.append(
            PLACEHOLDER.sub(
                lambda m: say_slot(flow, m.group(1), slots[m.group(1)], lang, region), sentence
            )
        )
    return "".join(kept).strip()
