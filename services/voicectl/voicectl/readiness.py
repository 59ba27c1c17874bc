"""Ask a service whether it is ready, and say in a few words why not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from voicectl.plan import HttpProbe, Probe, RedisProbe

PROBE_TIMEOUT_S = 2.0
# llm-local answers 503 with this code when its backend failed to start: it never gets ready.
FATAL_CODES = frozenset({"start_failed"})


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str = ""
    fatal: bool = False  # not ready and never will be: stop waiting


def check(probe: Probe) -> Readiness:
    if isinstance(probe, RedisProbe):
        return _check_redis(probe.url)
    return _check_http(probe)


def _check_redis(url: str) -> Readiness:
    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        return Readiness(False, f"PING failed: {type(exc).__name__}")
    finally:
        client.close()
    return Readiness(True)


def _check_http(probe: HttpProbe) -> Readiness:
    try:
        response = httpx.get(probe.url, timeout=PROBE_TIMEOUT_S, trust_env=False)
    except httpx.ConnectError:
        return Readiness(False, "not listening yet")
    except httpx.HTTPError as exc:
        return Readiness(False, type(exc).__name__)
    if response.status_code == 200:
        return Readiness(True)
    body = _json(response.content)
    error = body.get("error")
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    return Readiness(False, describe(response.status_code, body), fatal=code in FATAL_CODES)


def describe(status: int, body: dict[str, Any]) -> str:
    """The reason in a not-ready answer: failed checks, an error message, or the status."""
    checks = body.get("checks")
    if isinstance(checks, dict):
        failing = [f"{name}: {value}" for name, value in checks.items() if value != "ok"]
        if failing:
            return "; ".join(failing)
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return f"HTTP {status}"


def _json(content: bytes) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
