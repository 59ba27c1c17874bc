"""The screening report HR reads: per question the answer, its score and the candidate's words
behind it, per block the mean over the questions answered, and every red flag with its quote."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from dm.flows import Flow
from dm.interview.rubric import Assessment, FlagEvidence, not_answered
from dm.interview.screening import question_text, scored_questions

EXCERPT_CHARS = 200
_TEXTS = {
    "en": {
        "title": "Interview report",
        "blocks": "Blocks",
        "block": "block",
        "score": "score",
        "answered": "answered",
        "of": "of",
        "questions": "Questions",
        "question": "question",
        "answer": "answer",
        "evidence": "evidence",
        "flags": "red flags",
        "not_answered": "not answered",
        "no_flags": "No red flags.",
        "contradicts": "contradicts",
    },
    "ru": {
        "title": "Отчёт об интервью",
        "blocks": "Блоки",
        "block": "блок",
        "score": "оценка",
        "answered": "отвечено",
        "of": "из",
        "questions": "Вопросы",
        "question": "вопрос",
        "answer": "ответ",
        "evidence": "подтверждение",
        "flags": "красные флаги",
        "not_answered": "нет ответа",
        "no_flags": "Красных флагов нет.",
        "contradicts": "противоречит",
    },
}


class ReportRow(BaseModel):
    node: str
    block: str
    question: str
    answered: bool
    answer_excerpt: str
    score: int | None
    evidence: list[str]
    red_flags: list[FlagEvidence]


def excerpt(answer: str) -> str:
    text = " ".join(answer.split())
    if len(text) <= EXCERPT_CHARS:
        return text
    return text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"


def build_report(
    flow: Flow, lang: str, answers: Mapping[str, str], assessments: Mapping[str, Assessment]
) -> dict[str, Any]:
    """The report as JSON: every scored question in the flow's order (those without an
    assessment are "not answered"), the block means over answered questions, the flags."""
    rows = []
    for node in scored_questions(flow):
        assessment = assessments.get(node.id) or not_answered(node.id)
        rows.append(
            ReportRow(
                node=node.id,
                block=node.block or "",
                question=question_text(node, lang),
                answered=assessment.answered,
                answer_excerpt=excerpt(answers.get(node.id, "")),
                score=assessment.score,
                evidence=assessment.evidence,
                red_flags=assessment.red_flags,
            )
        )
    blocks = []
    for block_id, block in flow.blocks.items():
        scores = [row.score for row in rows if row.block == block_id and row.score is not None]
        blocks.append(
            {
                "block": block_id,
                "title": block.title.get(lang, block_id),
                "score": round(sum(scores) / len(scores), 2) if scores else None,
                "answered": len(scores),
                "questions": sum(row.block == block_id for row in rows),
            }
        )
    flags = [
        {
            "flag": flag.flag,
            "label": flow.red_flags[flag.flag].label.get(lang, flag.flag)
            if flag.flag in flow.red_flags
            else flag.flag,
            "node": row.node,
            "quote": flag.quote,
            "contradicts": flag.contradicts,
        }
        for row in rows
        for flag in row.red_flags
    ]
    return {
        "flow": flow.id,
        "lang": lang,
        "answered": sum(row.answered for row in rows),
        "questions": [row.model_dump() for row in rows],
        "blocks": blocks,
        "red_flags": flags,
    }


def report_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown, in the call's language (English for any other)."""
    t = _TEXTS.get(report.get("lang", "en"), _TEXTS["en"])
    rows = report["questions"]
    lines = [f"# {t['title']}: {report['flow']} ({report['lang']})", "", f"## {t['blocks']}", ""]
    lines += [f"| {t['block']} | {t['score']} | {t['answered']} |", "| --- | --- | --- |"]
    for block in report["blocks"]:
        score = "—" if block["score"] is None else f"{block['score']:.2f}"
        answered = f"{block['answered']} {t['of']} {block['questions']}"
        lines.append(f"| {_cell(block['title'])} | {score} | {answered} |")
    lines += ["", f"## {t['questions']}", ""]
    lines.append(
        f"| # | {t['question']} | {t['answer']} | {t['score']} | {t['evidence']} | {t['flags']} |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for number, row in enumerate(rows, 1):
        score = t["not_answered"] if row["score"] is None else str(row["score"])
        evidence = "; ".join(f"“{quote}”" for quote in row["evidence"]) or "—"
        flags = "; ".join(f"{f['flag']}: “{f['quote']}”" for f in row["red_flags"]) or "—"
        cells = [row["question"], row["answer_excerpt"] or "—", score, evidence, flags]
        lines.append(f"| {number} | " + " | ".join(_cell(cell) for cell in cells) + " |")
    lines += ["", f"## {t['flags'].capitalize()}", ""]
    for flag in report["red_flags"]:
        line = f"- **{flag['label']}** ({flag['node']}): “{flag['quote']}”"
        if flag.get("contradicts"):
            line += f" — {t['contradicts']} “{flag['contradicts']}”"
        lines.append(line)
    if not report["red_flags"]:
        lines.append(t["no_flags"])
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text that stays in its Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
