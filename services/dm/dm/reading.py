"""Read one caller utterance for a flow: every slot value its words give, and its cues.

No I/O and no decisions: `dm.engine` decides which values the call takes. A value is
*explicit* when its words leave no doubt which slot it fills ("меня зовут Мария", a whole
phone number, "tomorrow", "at 3 pm", "the knee"), so it may fill a slot the current step
does not ask for; a bare "Мария" or "три" is taken only where the step asks for a name or
a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from dm.extract import (
    extract_date,
    extract_integer,
    extract_time,
    extract_yes_no,
    match_enum,
)
from dm.extract.cues import Cues, read_cues
from dm.extract.dates import month_of
from dm.extract.names import read_name
from dm.extract.numbers import parse_cardinal
from dm.extract.phone import read_phone
from dm.extract.text import normalize, tokenize
from dm.flows import Flow, Node, SlotSpec

# Out-of-range reasons a value can be refused for.
PAST = "past"
CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Heard:
    value: Any
    explicit: bool
    # A name: only the surname ("my last name is ..."), to go with a first name known before.
    surname: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    text: str
    cues: Cues
    values: dict[str, Heard] = field(default_factory=dict)
    # A value read but refused (a day past, a time the clinic is closed): slot -> reason.
    refused: dict[str, str] = field(default_factory=dict)
    # Digits of a number heard only in part, with the digits heard before.
    partial_phone: str = ""


def read_turn(
    flow: Flow,
    node: Node,
    text: str,
    *,
    lang: str,
    today: date,
    region: str,
    partial_phone: str = "",
) -> Reading:
    """What `text` says, read for every slot of `flow` at `node`."""
    cues = read_cues(text)
    asked = set(node.collects) | set(node.accepts)
    readable = {
        name: spec
        for name, spec in flow.slots.items()
        if not (spec.only_when_asked and name not in asked)
    }
    values: dict[str, Heard] = {}
    refused: dict[str, str] = {}
    partial = ""
    for name, spec in readable.items():
        if spec.type == "phone":
            phone = read_phone(text, region, partial_phone if name in asked else "")
            if phone.e164 is not None:
                values[name] = Heard(phone.e164, explicit=True)
            elif name in asked and phone.digits:
                partial = ("+" if phone.plus else "") + phone.digits
    named = _slots_named(flow, readable, asked, text)
    for name, spec in readable.items():
        if spec.type in ("phone", "name"):
            continue
        bare = name in asked or name in named
        if spec.type == "time":
            # At a read-back, "no, not ten, eleven" corrects the time with a bare number;
            # where a phone number was said, its digits are no bare time.
            bare = bare or (node.readback and cues.negation)
            bare = bare and not any(flow.slots[n].type == "phone" for n in values)
        heard = _read_value(spec, text, lang, today, asked=bare)
        if heard is None:
            continue
        reason = _out_of_range(spec, heard.value, today)
        if reason is not None:
            refused[name] = reason
        else:
            values[name] = heard
    for name, spec in readable.items():
        if spec.type == "name":
            name_heard = _read_name(text, spec, bare=name in asked and not _is_other(cues))
            if name_heard is not None and not _names_other_value(name_heard.value, flow, values):
                values[name] = name_heard
    return Reading(text, cues, values, refused, partial)


def _slots_named(flow: Flow, readable: dict[str, SlotSpec], asked: set[str], text: str) -> set[str]:
    """Slots the caller names at a step that asks which detail to change ("the time, make
    it four thirty"): their values are read as if asked for."""
    named = set()
    for name in asked:
        spec = readable.get(name)
        if spec is not None and spec.type == "enum" and set(spec.values) <= set(flow.slots):
            value = match_enum(text, spec.values)
            if value is not None:
                named.add(value)
    return named


def _is_other(cues: Cues) -> bool:
    """An utterance that is a question, a refusal or a request is not a bare name."""
    return cues.question or cues.refusal or cues.person


def _read_name(text: str, spec: SlotSpec, *, bare: bool) -> Heard | None:
    found = read_name(text, bare=bare)
    if found is None:
        return None
    return Heard(found.value[: spec.max_length], found.explicit, found.surname_only)


def _names_other_value(name: str, flow: Flow, values: dict[str, Heard]) -> bool:
    """Whether the name's words are what another slot read: "next Friday", "таз", or a
    month beside a date ("двадцать восьмого марта" is no Марта)."""
    date_said = any(flow.slots[slot].type == "date" for slot in values)
    if date_said and any(month_of(normalize(word)) for word in name.split()):
        return True
    others = [
        spec
        for slot, spec in flow.slots.items()
        if spec.type in ("enum", "date", "time") and not spec.only_when_asked
    ]
    return any(
        _read_value(spec, word, "", date(2000, 1, 1), asked=True) is not None
        for word in name.split()
        for spec in others
    )


def _read_value(spec: SlotSpec, text: str, lang: str, today: date, *, asked: bool) -> Heard | None:
    match spec.type:
        case "date":
            found = extract_date(text, lang, today)
            return Heard(found.isoformat(), explicit=True) if found else None
        case "time":
            moment = extract_time(text, lang, asked=asked)
            if moment is None:
                return None
            return Heard(moment.strftime("%H:%M"), explicit=not _bare_number(text))
        case "enum":
            value = match_enum(text, spec.values)
            return Heard(value, explicit=True) if value else None
        case "boolean":
            yes = extract_yes_no(text, lang) if asked else None
            return Heard(yes, explicit=False) if yes is not None else None
        case "integer":
            number = extract_integer(text, lang) if asked else None
            if number is None or not _within(spec, number):
                return None
            return Heard(number, explicit=False)
        case "string":
            words = " ".join(text.split())
            return Heard(words[: spec.max_length], explicit=False) if asked and words else None
    return None


def _bare_number(text: str) -> bool:
    """The utterance is a number and nothing else ("три", "10"): a time only when asked."""
    words = tokenize(normalize(text)).words
    if len(words) == 1 and words[0].isdigit():
        return True
    parsed = parse_cardinal(words, 0) if words else None
    return parsed is not None and parsed[1] == len(words)


def _within(spec: SlotSpec, number: int) -> bool:
    low_ok = spec.minimum is None or number >= spec.minimum
    return low_ok and (spec.maximum is None or number <= spec.maximum)


def _out_of_range(spec: SlotSpec, value: Any, today: date) -> str | None:
    if spec.type == "date" and spec.not_past and date.fromisoformat(value) < today:
        return PAST
    if spec.type == "time" and spec.between is not None:
        start, end = (time.fromisoformat(bound) for bound in spec.between)
        if not start <= time.fromisoformat(value) < end:
            return CLOSED
    return None
