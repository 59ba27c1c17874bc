"""Shared by the stack tests: the repository root, the contract's variables, compose helpers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from voicectl.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]

# CONTRACT.md's settings table: these names are the public surface.
CONTRACT_VARIABLES = (
    "REDIS_URL",
    "LLM_BASE_URL",
    "LLM_API_KEY",
    "DM_URL",
    "GATEWAY_API_KEYS",
    "DM_TURN_DEADLINE_S",
    "DM_MAX_TOKENS",
    "LLM_BACKEND",
    "LLM_MODEL",
    "LLM_MODEL_PATH",
    "LLM_UPSTREAM_URL",
    "GATEWAY_PORT",
    "DM_PORT",
    "LLM_PORT",
    "DM_API_KEY",
    "DM_DEFAULT_REGION",
)


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


def mount(spec: str) -> tuple[str, str]:
    """A short-syntax volume `source:target[:mode]` → (source, target); source may be `${…}`."""
    match = re.fullmatch(r"(.+?):(/[^:]*)(?::(?:ro|rw))?", spec)
    assert match is not None, spec
    return match.group(1), match.group(2)


# Settings a developer's shell may have set; a stack under test gets only its own.
SERVICE_PREFIXES = ("REDIS_", "LLM_", "DM_", "GATEWAY_")
STARTED = re.compile(r"started (\S+) on port (\d+) \(pid (\d+)\)")


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def clean_env(**values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SERVICE_PREFIXES) and key not in ("HOST", "LOG_LEVEL")
    }
    env["NO_COLOR"] = "1"
    env.update(values)
    return env


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


class StackRun:
    """`voicectl stack` as a real child process, its output collected line by line."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voicectl", "stack"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no {text!r} from the stack; it said:\n{self.output}")
                self._changed.wait(min(left, 0.5))

    def pids(self) -> dict[str, int]:
        return {m.group(1): int(m.group(3)) for m in map(STARTED.search, self.lines) if m}

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code

    def close(self) -> None:
        """Make sure nothing of this stack survives the test, whatever happened."""
        if self.process.poll() is None:
            self.stop()
        for pid in self.pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        self.process.stdout.close()
        with self._changed:
            self._changed.notify_all()
