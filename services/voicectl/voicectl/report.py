"""`voicectl report CALL_ID`: an interview call's report, from the gateway, as Markdown or JSON."""

from __future__ import annotations

import json
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx

from dm.interview.report import report_markdown

REQUEST_TIMEOUT_S = 10.0


class ReportUnavailable(Exception):
    """No report to print; the message says why."""


def http_base(url: str) -> str:
    """The gateway's HTTP base URL, also when given as the WebSocket one `voicectl call` takes."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def fetch_report(url: str, call_id: str, token: str | None) -> dict[str, Any]:
    """The `report` of GET /v1/calls/{call_id}; ReportUnavailable when there is none."""
    base = http_base(url)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        response = httpx.get(
            f"{base}/v1/calls/{call_id}",
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        )
    except httpx.ConnectError:
        raise ReportUnavailable(
            f"cannot reach the gateway at {base}; is `make run` running?"
        ) from None
    except httpx.HTTPError as exc:
        raise ReportUnavailable(f"the gateway at {base} failed: {type(exc).__name__}") from None
    body = _json(response)
    if response.status_code != 200:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        hint = " (wrong or missing --token?)" if response.status_code == 401 else ""
        raise ReportUnavailable(f"HTTP {response.status_code}{hint}: {message or response.text}")
    report = body.get("report")
    if not isinstance(report, dict):
        raise ReportUnavailable(
            f"call '{call_id}' has no interview report (flow {body.get('flow', 'unknown')})"
        )
    return report


def run_report(
    url: str, call_id: str, token: str | None, *, as_json: bool, out: TextIO, err: TextIO
) -> int:
    try:
        report = fetch_report(url, call_id, token)
    except ReportUnavailable as exc:
        err.write(f"voicectl: error: {exc}\n")
        return 1
    if as_json:
        out.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(report_markdown(report))
    return 0


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
