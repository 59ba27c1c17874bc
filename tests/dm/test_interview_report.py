"""The report HR reads: every question with its answer, score and the candidate's words,
block means over the questions answered, every red flag with its quote."""

from __future__ import annotations

from typing import Any

from dm.flows import load_flow
from dm.flows.loader import BUILTIN_DIR
from dm.interview.report import EXCERPT_CHARS, build_report, report_markdown
from dm.interview.screening import assess_call, scored_questions

FLOW = load_flow(BUILTIN_DIR / "interview_python_dev.yaml")
ANSWERS = {
    "q_experience": "about six years of python, mostly fastapi services for a bank | payments",
    "q_concurrency": "",
    "q_testing": "honestly i don't write tests, i just run the code and see",
    "q_code_review": "i check the logic, the tests and the naming " + "and more " * 40,
    "q_conflict": "sorry what",
    "q_feedback": "my lead told me my pull requests were too big so now i split them",
}


def report(lang: str = "en") -> dict[str, Any]:
    return build_report(FLOW, lang, ANSWERS, assess_call(FLOW, lang, ANSWERS))


def test_every_question_is_a_row_in_the_flows_order_not_answered_ones_too() -> None:
    built = report()
    rows = built["questions"]
    assert [row["node"] for row in rows] == [node.id for node in scored_questions(FLOW)]
    by_node = {row["node"]: row for row in rows}
    for node_id in ("q_concurrency", "q_conflict"):
        assert by_node[node_id]["answered"] is False
        assert by_node[node_id]["score"] is None
        assert by_node[node_id]["evidence"] == []
        assert by_node[node_id]["red_flags"] == []
    assert by_node["q_conflict"]["answer_excerpt"] == "sorry what"
    assert by_node["q_experience"]["question"].startswith("How many years")
    assert "{" not in by_node["q_experience"]["question"]
    assert len(by_node["q_code_review"]["answer_excerpt"]) <= EXCERPT_CHARS + 2
    assert built["answered"] == 4
    for row in rows:
        for quote in row["evidence"]:
            assert quote in ANSWERS[row["node"]]


def test_a_block_mean_counts_only_the_questions_answered() -> None:
    built = report()
    rows = {row["node"]: row for row in built["questions"]}
    blocks = {block["block"]: block for block in built["blocks"]}
    assert blocks["python"]["answered"] == 1
    assert blocks["python"]["questions"] == 2
    assert blocks["python"]["score"] == rows["q_experience"]["score"]
    engineering = [rows["q_testing"]["score"], rows["q_code_review"]["score"]]
    assert blocks["engineering"]["score"] == round(sum(engineering) / 2, 2)
    assert blocks["teamwork"]["score"] == rows["q_feedback"]["score"]
    assert blocks["python"]["title"] == "Python knowledge"


def test_every_flag_is_listed_with_its_label_question_and_quote() -> None:
    flags = report()["red_flags"]
    assert flags == [
        {
            "flag": "no_testing",
            "label": FLOW.red_flags["no_testing"].label["en"],
            "node": "q_testing",
            "quote": flags[0]["quote"],
            "contradicts": None,
        }
    ]
    assert "don't write tests" in flags[0]["quote"]


def test_the_markdown_shows_the_tables_and_the_flags() -> None:
    built = report()
    text = report_markdown(built)
    assert text.startswith("# Interview report: interview_python_dev (en)")
    assert "| block | score | answered |" in text
    assert "| Python knowledge |" in text
    assert text.count("| not answered |") == 2
    assert "bank \\| payments" in text
    assert "- **does not write tests** (q_testing): “" in text
    for row in built["questions"]:
        assert row["question"] in text
    numbered = {f"| {number}" for number in range(1, len(built["questions"]) + 1)}
    rows = [line for line in text.splitlines() if line.split(" | ")[0] in numbered]
    assert len(rows) == len(built["questions"])
    for line in rows:
        assert line.replace("\\|", "").count("|") == 7  # six cells, a pipe in one escaped


def test_the_report_speaks_the_calls_language() -> None:
    text = report_markdown(report("ru"))
    assert text.startswith("# Отчёт об интервью")
    assert "нет ответа" in text
    assert "Знание Python" in text
    assert "не пишет тесты" in text


def test_a_call_without_flags_says_so() -> None:
    answers = {"q_experience": "six years of python with django"}
    built = build_report(FLOW, "en", answers, assess_call(FLOW, "en", answers))
    assert built["red_flags"] == []
    assert "No red flags." in report_markdown(built)
