"""The flow file format: slots, nodes, transitions with slot guards, localized texts.

A flow is data; behaviour lives in `dm.engine`. Texts the caller hears are per
language (`say`, `reask`); what the LLM reads (`instructions`, `goal`) is in
English, which the small models understand best.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dm.interview.rubric import Rubric

LocalizedText = dict[str, str]
SlotType = Literal["string", "name", "phone", "date", "time", "integer", "boolean", "enum"]
ReplyMode = Literal["generate", "scripted"]
FlowKind = Literal["booking", "interview"]
Outcome = Literal["completed", "transfer"]
# A guard on a slot: true/false for a boolean slot, a value for an enum slot,
# or "filled"/"empty" for any slot.
SlotCondition = bool | str


class FlowModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlotSpec(FlowModel):
    type: SlotType
    description: str = ""
    max_length: int = Field(default=40, ge=1, le=200)
    # enum: value -> words that name it in any language (matched on word stems).
    values: dict[str, list[str]] = Field(default_factory=dict)
    # enum: value -> how to say it, per language (for reply templates).
    labels: dict[str, LocalizedText] = Field(default_factory=dict)
    minimum: int | None = None
    maximum: int | None = None
    # Control slots (a yes/no, a choice) count only at a node that asks for them,
    # so a stray "yes" elsewhere confirms nothing.
    only_when_asked: bool = False
    # time: the opening hours, "HH:MM" from (inclusive) and to (exclusive).
    between: tuple[str, str] | None = None
    # date: a day already past is refused.
    not_past: bool = False
    # Said when a value is refused (outside `between`, in the past), before the re-ask.
    out_of_range: LocalizedText = Field(default_factory=dict)
    # Why the flow needs this slot: said to a caller who asks, or refuses to give it.
    explain: LocalizedText = Field(default_factory=dict)


class Transition(FlowModel):
    to: str
    when: dict[str, SlotCondition] = Field(default_factory=dict)
    # Slots cleared when this transition is taken (values given in the same turn stay).
    reset: list[str] = Field(default_factory=list)


class Node(FlowModel):
    id: str = ""  # filled from the key in the flow file
    goal: str = ""
    collects: list[str] = Field(default_factory=list)
    # Slots read here besides those the node collects; the call may leave without them.
    accepts: list[str] = Field(default_factory=list)
    say: LocalizedText
    reask: LocalizedText = Field(default_factory=dict)
    transitions: list[Transition] = Field(default_factory=list)
    final: bool = False
    reply_mode: ReplyMode | None = None
    # A read-back node: any detail the caller names here is a correction ("no, at 12,
    # not 11"); the call then goes to `after_correction` (default: stays) and reads the
    # details back again.
    readback: bool = False
    after_correction: str | None = None
    # A phone step: said when only part of a number was heard ({digits}: what was).
    partial: LocalizedText = Field(default_factory=dict)
    # A final node: how the call ended here.
    outcome: Outcome = "completed"
    block: str | None = None  # interview: the competency block this question scores
    # Interview: the red flags an answer to this question may raise (None: any of the
    # flow's). A question about tests cannot show "blames colleagues"; the LLM is
    # offered only these, which also keeps the schema's enum short.
    red_flags: list[str] | None = None
    # Interview: what an answer must show to earn each score (see dm.interview.rubric).
    rubric: Rubric | None = None
    # Turns the call may stay here before moving on anyway; None: until `collects`
    # is filled (booking) or one follow-up (interview).
    max_followups: int | None = Field(default=None, ge=0)

    @property
    def targets(self) -> list[str]:
        return [t.to for t in self.transitions]


class Block(FlowModel):
    title: LocalizedText


class Answer(FlowModel):
    """A short answer to a question callers ask, found by word stems."""

    stems: list[str] = Field(min_length=1)
    say: LocalizedText


class RedFlag(FlowModel):
    description: str
    label: LocalizedText


class Flow(FlowModel):
    id: str
    kind: FlowKind
    languages: list[str] = Field(min_length=1)
    start_node: str
    reply_mode: ReplyMode
    instructions: str
    # Whether a caller may give any slot at any step ("Maria, 8 916..., knee, tomorrow"),
    # or only the slots the current step collects.
    volunteered_slots: bool = True
    # Failed asks at one step (a turn that changes nothing) before the call is handed to
    # a person: 2 re-asks after the first ask.
    max_reasks: int = Field(default=2, ge=0, le=50)
    # Phone region for national numbers when the call names none (ISO 3166 alpha-2).
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    # Whether turns whose words already decide them skip the LLM (DM_RULES overrides).
    rules: bool = True
    # Said before the next question when the caller corrected a detail mid-call.
    changed: LocalizedText = Field(default_factory=dict)
    # Interview, scripted replies: said after an answer, before the next question.
    acknowledge: LocalizedText = Field(default_factory=dict)
    # Said to a question nothing in `answers` matches, before the re-ask.
    no_answer: LocalizedText = Field(default_factory=dict)
    answers: list[Answer] = Field(default_factory=list)
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    nodes: dict[str, Node]
    blocks: dict[str, Block] = Field(default_factory=dict)
    red_flags: dict[str, RedFlag] = Field(default_factory=dict)

    def reply_mode_of(self, node: Node) -> ReplyMode:
        return node.reply_mode or self.reply_mode

    @property
    def transfer_node(self) -> str | None:
        """The final node that hands the call to a person; reachable from every step."""
        return next(
            (n.id for n in self.nodes.values() if n.final and n.outcome == "transfer"), None
        )

    def targets_of(self, node: Node) -> list[str]:
        """Where a call may go from `node`: its transitions, and the hand-over to a person."""
        transfer = self.transfer_node
        if node.final or transfer is None or transfer in node.targets:
            return node.targets
        return [*node.targets, transfer]

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "languages": list(self.languages),
            "start_node": self.start_node,
        }

    def graph(self) -> dict[str, object]:
        """The flow graph as GET /v1/flows/{id} shows it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "start_node": self.start_node,
            "languages": list(self.languages),
            "reply_mode": self.reply_mode,
            "nodes": [
                {
                    "id": node.id,
                    "transitions": self.targets_of(node),
                    "final": node.final,
                    "slots": list(node.collects),
                }
                for node in self.nodes.values()
            ],
            "slots": {
                name: spec.model_dump(exclude_defaults=True) for name, spec in self.slots.items()
            },
        }
