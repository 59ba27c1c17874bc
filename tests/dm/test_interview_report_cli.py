"""`voicectl report CALL_ID` against a small local server serving canned call descriptions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dm.flows import load_flow
from dm.flows.loader import BUILTIN_DIR
from dm.interview.report import build_report, report_markdown
from dm.interview.screening import assess_call
from support.servers import ServerThread
from voicectl.__main__ import main
from voicectl.redis_server import free_port

TOKEN = "k-report"
FLOW = load_flow(BUILTIN_DIR / "interview_python_dev.yaml")
ANSWERS = {
    "q_experience": "six years of python, fastapi services for a logistics company",
    "q_testing": "i don't write tests, qa does that",
    "q_feedback": "my lead said my pull requests were too big so now i split them",
}
REPORT = build_report(FLOW, "en", ANSWERS, assess_call(FLOW, "en", ANSWERS))
CALLS: dict[str, dict[str, Any]] = {
    "iv-1": {"call_id": "iv-1", "flow": "interview_python_dev", "lang": "en", "report": REPORT},
    "book-1": {"call_id": "book-1", "flow": "booking_mri", "lang": "en", "slots": {}},
}


async def describe_call(request: Request) -> JSONResponse:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        error = {"code": "unauthorized", "message": "missing or wrong API key"}
        return JSONResponse({"error": error}, status_code=401)
    call_id = request.path_params["call_id"]
    if call_id not in CALLS:
        error = {"code": "call_not_found", "message": f"no call '{call_id}'"}
        return JSONResponse({"error": error}, status_code=404)
    return JSONResponse(CALLS[call_id])


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    app = Starlette(routes=[Route("/v1/calls/{call_id}", describe_call)])
    with ServerThread(app) as server:
        yield server.url


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_report_prints_as_markdown(
    gateway_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = report(capsys, "iv-1", "--url", gateway_url, "--token", TOKEN)
    assert code == 0, err
    assert out == report_markdown(REPORT)
    assert out.startswith("# Interview report: interview_python_dev (en)")
    assert "| not answered |" in out
    assert "- **does not write tests** (q_testing): “" in out


def test_the_report_prints_as_json(gateway_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ws_url = gateway_url.replace("http://", "ws://")
    code, out, err = report(capsys, "iv-1", "--url", ws_url, "--token", TOKEN, "--json")
    assert code == 0, err
    assert json.loads(out) == REPORT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["iv-1"], "HTTP 401 (wrong or missing --token?): missing or wrong API key"),
        (["nope", "--token", TOKEN], "HTTP 404: no call 'nope'"),
        (["book-1", "--token", TOKEN], "call 'book-1' has no interview report (flow booking_mri)"),
    ],
)
def test_no_report_is_explained(
    gateway_url: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = report(capsys, *args[:1], "--url", gateway_url, *args[1:])
    assert code == 1
    assert out == ""
    assert err == f"voicectl: error: {message}\n"


def test_no_gateway_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = report(capsys, "iv-1", "--url", url)
    assert code == 1
    assert f"cannot reach the gateway at {url}; is `make run` running?" in err
