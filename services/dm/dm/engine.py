"""The turn's logic, with no I/O: what the caller said, where the call goes, what it hears.

The LLM proposes; this module disposes. Slot values are accepted only when a
deterministic extractor can read them (from the caller's words, or from the
LLM's words when those are grounded in the caller's), the next node is always
one the graph allows from here with its slot guards satisfied, and steps whose
questions are already answered are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from dm.extract import (
    extract_date,
    extract_integer,
    extract_name,
    extract_phone,
    extract_time,
    extract_yes_no,
    grounded,
    match_enum,
)
from dm.flows import Flow, Node, SlotSpec, Transition
from dm.render import render
from dm.schema import TurnSchema, fillable_slots
from dm.state import CallState, Exchange

INTERVIEW_FOLLOWUPS = 1


@dataclass(frozen=True, slots=True)
class Understanding:
    """What one caller utterance means for the call, after validation."""

    slots: dict[str, Any]  # values given this turn, normalised
    proposed: str | None  # the LLM's next node, if it named an allowed one
    score: int | None
    red_flags: tuple[str, ...]


NOTHING_UNDERSTOOD = Understanding({}, None, None, ())


StayReason = Literal["missing", "followup", "blocked", "reread", "fallback"]


@dataclass(frozen=True, slots=True)
class Move:
    node: str
    slots: dict[str, Any]
    # Why the call stayed: a slot still missing, a follow-up the LLM asked for, no
    # transition's guard satisfied, a read-back node re-reading changed details, or an
    # LLM failure.
    stayed: StayReason | None = None


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    state: CallState
    reply: str  # the whole reply: the LLM's words already spoken, then the flow's text
    done: bool


def join_reply(spoken: str, suffix: str) -> str:
    """`spoken` followed by `suffix`, one space between; `spoken` stays a prefix."""
    if not suffix:
        return spoken
    if not spoken.strip():
        return suffix
    return spoken + ("" if spoken.endswith(" ") else " ") + suffix


def understand(
    flow: Flow,
    node: Node,
    schema: TurnSchema,
    llm: dict[str, Any],
    text: str,
    lang: str,
    today: date,
) -> Understanding:
    llm_slots = llm.get("slots")
    if not isinstance(llm_slots, dict):
        llm_slots = {}
    given: dict[str, Any] = {}
    for name in fillable_slots(flow, node):
        value = read_slot(
            flow.slots[name], text, llm_slots.get(name), lang, today, asked=name in node.collects
        )
        if value is not None:
            given[name] = value
    proposed = llm.get("next_node")
    score = llm.get("score")
    flags = llm.get("red_flags")
    return Understanding(
        slots=given,
        proposed=proposed if isinstance(proposed, str) and proposed in schema.moves else None,
        score=score
        if schema.has_score
        and isinstance(score, int)
        and not isinstance(score, bool)
        and 0 <= score <= 5
        else None,
        red_flags=tuple(
            dict.fromkeys(f for f in flags if isinstance(f, str) and f in schema.red_flags)
        )
        if isinstance(flags, list)
        else (),
    )


def read_slot(
    spec: SlotSpec, text: str, proposed: Any, lang: str, today: date, *, asked: bool
) -> Any:
    """A slot's value from this turn, normalised, or None.

    The caller's words are read first. The LLM's value counts only when its words
    appear in what the caller said, and then it is read like the caller's words;
    a choice (enum) the caller's words do not name is taken from the LLM only at
    the step that asks for it. Yes/no is never taken from the LLM.
    """
    if spec.only_when_asked and not asked:
        return None
    from_text = _extract(spec, text, lang, today, asked=asked)
    if from_text is not None or spec.type == "boolean":
        return from_text
    if spec.type == "enum":
        if asked and isinstance(proposed, str) and proposed in spec.values:
            return proposed
        return None
    if spec.type == "integer":
        if isinstance(proposed, int) and not isinstance(proposed, bool) and str(proposed) in text:
            return _bounded(spec, proposed)
        return None
    if not isinstance(proposed, str) or not proposed.strip() or not grounded(proposed, text):
        return None
    if spec.type == "string":
        return " ".join(proposed.split())[: spec.max_length]
    return _extract(spec, proposed, lang, today, asked=True)


def _extract(spec: SlotSpec, text: str, lang: str, today: date, *, asked: bool) -> Any:
    match spec.type:
        case "phone":
            return extract_phone(text)
        case "date":
            found = extract_date(text, lang, today)
            return found.isoformat() if found else None
        case "time":
            moment = extract_time(text, lang)
            return moment.strftime("%H:%M") if moment else None
        case "integer":
            number = extract_integer(text, lang) if asked else None
            return _bounded(spec, number) if number is not None else None
        case "boolean":
            return extract_yes_no(text, lang)
        case "enum":
            return match_enum(text, spec.values)
        case "name":
            # A bare utterance is taken for a name only when the step asked for one.
            name = extract_name(text, lang) if asked else None
            return name[: spec.max_length] if name else None
    return None


def _bounded(spec: SlotSpec, number: int) -> int | None:
    if spec.minimum is not None and number < spec.minimum:
        return None
    if spec.maximum is not None and number > spec.maximum:
        return None
    return number


def followups_allowed(flow: Flow, node: Node) -> int | None:
    if node.max_followups is not None:
        return node.max_followups
    return INTERVIEW_FOLLOWUPS if flow.kind == "interview" else None


def decide_move(
    flow: Flow,
    node: Node,
    slots_before: dict[str, Any],
    given: dict[str, Any],
    proposed: str | None,
    node_turns: int,
) -> Move:
    """Where the call goes: code decides, taking the LLM's proposal only where the graph allows."""
    slots = {**slots_before, **given}
    limit = followups_allowed(flow, node)
    may_stay = limit is None or node_turns < limit
    if node.readback and _changed_details(node, slots_before, given):
        return Move(node.id, _cleared(slots, node.collects), "reread")
    missing = [name for name in node.collects if slots.get(name) is None]
    if missing and may_stay:
        return Move(node.id, slots, "missing")
    if not node.collects and proposed == node.id and may_stay:
        return Move(node.id, slots, "followup")
    allowed = [t for t in node.transitions if guards_pass(flow, t, slots)]
    if not allowed:
        return Move(node.id, slots, "blocked")
    chosen = next((t for t in allowed if t.to == proposed), allowed[0])
    return _follow(flow, node, chosen, slots, given)


def _follow(
    flow: Flow, origin: Node, transition: Transition, slots: dict[str, Any], given: dict[str, Any]
) -> Move:
    """Take `transition`, then skip on through steps whose slots are already filled."""
    seen = {origin.id}
    while True:
        target = flow.nodes[transition.to]
        slots = _reset(transition.reset, slots, given, target)
        answered = target.collects and all(slots.get(n) is not None for n in target.collects)
        if target.final or not answered or target.id in seen:
            return Move(target.id, slots)
        seen.add(target.id)
        onward = [t for t in target.transitions if guards_pass(flow, t, slots)]
        if not onward:
            return Move(target.id, slots)
        transition = onward[0]


def guards_pass(flow: Flow, transition: Transition, slots: dict[str, Any]) -> bool:
    for name, condition in transition.when.items():
        value = slots.get(name)
        if condition == "filled":
            ok = value is not None
        elif condition == "empty":
            ok = value is None
        else:
            ok = value == condition and value is not None
        if not ok:
            return False
    return True


def _reset(
    names: list[str], slots: dict[str, Any], given: dict[str, Any], target: Node
) -> dict[str, Any]:
    """Clear `names`, except a value the caller gave just now for the step being entered."""
    keep = {n for n in names if n in given and n in target.collects}
    return {k: (None if k in names and k not in keep else v) for k, v in slots.items()}


def _cleared(slots: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {k: (None if k in names else v) for k, v in slots.items()}


def _changed_details(node: Node, before: dict[str, Any], given: dict[str, Any]) -> bool:
    return any(
        name not in node.collects and before.get(name) is not None and before[name] != value
        for name, value in given.items()
    )


def apply_turn(
    flow: Flow,
    state: CallState,
    *,
    turn_id: str,
    text: str,
    understanding: Understanding | None,
    llm_words: str,
    backchannel: str | None,
    now: float,
    history_cap: int,
) -> TurnOutcome:
    """The call after this turn. `understanding` None means the LLM failed: re-ask, change nothing.

    `llm_words` is what of the LLM's reply the caller has already been sent; the
    reply returned starts with it.
    """
    node = flow.nodes[state.node]
    lang = state.lang
    if understanding is None:
        move = Move(node.id, dict(state.slots), "fallback")
        understanding = NOTHING_UNDERSTOOD
    else:
        move = decide_move(
            flow, node, state.slots, understanding.slots, understanding.proposed, state.node_turns
        )
    target = flow.nodes[move.node]
    if move.stayed is None or move.stayed == "reread":
        suffix = render(target.say[lang], flow, move.slots, lang)
    elif move.stayed == "followup" and llm_words.strip():
        suffix = ""
    else:
        suffix = render((node.reask or node.say)[lang], flow, move.slots, lang)
    reply = join_reply(llm_words, suffix)

    scores = {block: list(values) for block, values in state.scores.items()}
    if understanding.score is not None and node.block is not None:
        scores.setdefault(node.block, []).append(understanding.score)
    red_flags = list(dict.fromkeys([*state.red_flags, *understanding.red_flags]))
    exchange = Exchange(turn_id=turn_id, node=node.id, user=text, agent=reply)
    new_state = state.model_copy(
        update={
            "node": move.node,
            "slots": move.slots,
            "turns": state.turns + 1,
            "node_turns": state.node_turns + 1 if move.node == node.id else 0,
            "history": [*state.history, exchange][-history_cap:],
            "last_backchannel": backchannel or state.last_backchannel,
            "scores": scores,
            "red_flags": red_flags,
            "ended": target.final,
            "end_reason": "completed" if target.final else None,
            "updated_at": now,
        }
    )
    return TurnOutcome(state=new_state, reply=reply, done=target.final)


def start_state(
    flow: Flow, call_id: str, lang: str, metadata: dict[str, Any], now: float
) -> CallState:
    start = flow.nodes[flow.start_node]
    slots = dict.fromkeys(flow.slots)
    return CallState(
        call_id=call_id,
        flow=flow.id,
        lang=lang,
        node=start.id,
        greeting=render(start.say[lang], flow, slots, lang),
        slots=slots,
        metadata=metadata,
        created_at=now,
        updated_at=now,
    )
