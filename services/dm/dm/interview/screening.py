"""A whole screening: each question's answer assessed by its rubric, and later answers
checked against the years of Python the candidate claimed earlier."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dm.flows import Flow, Node
from dm.interview.consistency import contradiction
from dm.interview.rubric import Assessment, FlagEvidence, assess_answer, not_answered
from dm.schema import node_red_flags

# The flow's red flag for an answer that contradicts an earlier one.
CONTRADICTION_FLAG = "inconsistent"
_PLACEHOLDER = re.compile(r"\{\w+\}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def scored_questions(flow: Flow) -> list[Node]:
    """The questions that are scored (a block and a rubric), in the flow's order."""
    return [node for node in flow.nodes.values() if node.block and node.rubric]


def assess_question(
    flow: Flow, node: Node, lang: str, answer: str, earlier: Sequence[str] = ()
) -> Assessment:
    """The rubric's assessment of `answer` to `node`, checked against `earlier` (the
    candidate's earlier answers, in order) with `add_contradiction`."""
    if node.rubric is None:
        return not_answered(node.id)
    assessment = assess_answer(node.id, node.rubric, node_red_flags(flow, node), answer, lang)
    return add_contradiction(flow, node, assessment, answer, earlier)


def add_contradiction(
    flow: Flow, node: Node, assessment: Assessment, answer: str, earlier: Sequence[str]
) -> Assessment:
    """`assessment` with the contradiction flag when `answer` contradicts the years of Python
    claimed in an earlier answer, where the question allows the flag and the answer answers
    it (a rubric's or a judge's assessment alike)."""
    allowed = CONTRADICTION_FLAG in node_red_flags(flow, node)
    raised = any(flag.flag == CONTRADICTION_FLAG for flag in assessment.red_flags)
    if not assessment.answered or not allowed or raised:
        return assessment
    for claimed in earlier:
        found = contradiction(claimed, answer)
        if found is not None:
            quote, contradicts = found
            flag = FlagEvidence(flag=CONTRADICTION_FLAG, quote=quote, contradicts=contradicts)
            return assessment.model_copy(update={"red_flags": [*assessment.red_flags, flag]})
    return assessment


def question_text(node: Node, lang: str) -> str:
    """The question as asked, less a sentence that greets by name ("Nice to meet you, {name}.")."""
    sentences = _SENTENCE.split(node.say.get(lang) or next(iter(node.say.values())))
    return " ".join(s for s in sentences if not _PLACEHOLDER.search(s))


def assess_call(flow: Flow, lang: str, answers: Mapping[str, str]) -> dict[str, Assessment]:
    """Every scored question's assessment (a question without an answer: not answered)."""
    assessed: dict[str, Assessment] = {}
    earlier: list[str] = []
    for node in scored_questions(flow):
        answer = answers.get(node.id, "")
        assessed[node.id] = assess_question(flow, node, lang, answer, earlier)
        earlier.append(answer)
    return assessed
