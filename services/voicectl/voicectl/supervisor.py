"""Child processes of the stack: start, relay logs, wait until ready, watch, stop.

Each child runs in its own session (so its own process group): a Ctrl-C in the
terminal reaches only voicectl, which then stops the children in reverse start
order, SIGTERM to the whole group first and SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from voicectl import logfmt, readiness
from voicectl.console import Console
from voicectl.plan import ServiceSpec

STOP_TIMEOUT_S = 10.0
TAIL_LINES = 8
POLL_S = 0.2
SERVICE_COLORS = {"redis": "red", "llm-local": "magenta", "dm": "cyan", "gateway": "green"}
LEVEL_COLORS = {"error": "red", "critical": "red", "warning": "yellow"}
PREFIX_WIDTH = 9  # len("llm-local")
HINTS = {
    "address already in use": "its port was taken after the start-up check: run again "
    "or choose another port",
    "no module named": "the project is not installed in this Python: run `make install`",
}


class StackFailed(Exception):
    """The stack cannot run on: a child died or never became ready."""


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived."""


@dataclass
class StopFlags:
    """Set by the stop signals' handler, so plain attributes and no lock: the handler
    runs on the main thread between two bytecodes, and one that took a lock the main
    thread was holding (a threading.Event's, inside `Event.wait`) hung voicectl for good.
    """

    requested: bool = False  # the first signal: stop gracefully
    forced: bool = False  # the second: kill now

    def on_signal(self) -> None:
        self.forced = self.requested
        self.requested = True


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    relay: threading.Thread
    tail: deque[str]


class Supervisor:
    def __init__(
        self,
        console: Console,
        env: Mapping[str, str],
        stop: StopFlags,
    ) -> None:
        self.console = console
        self.env = {**os.environ, **env}
        self.stop = stop
        self.children: list[Child] = []

    def start(self, spec: ServiceSpec) -> Child:
        process = subprocess.Popen(
            spec.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        relay = threading.Thread(
            target=self._relay, args=(spec.name, process, tail), name=f"relay-{spec.name}"
        )
        relay.daemon = True
        relay.start()
        child = Child(spec, process, relay, tail)
        self.children.append(child)
        self.console.say(f"started {spec.name} on port {spec.port} (pid {process.pid})")
        return child

    def wait_ready(self, child: Child, what: str) -> None:
        spec = child.spec
        with self.console.status(what) as status:
            while True:
                if self.stop.requested:
                    raise StopRequested
                self.check_running()
                result = readiness.check(spec.probe)
                if result.ready:
                    break
                status.update(result.detail)
                if result.fatal:
                    raise StackFailed(f"{spec.name} cannot start: {result.detail}")
                if status.elapsed > spec.ready_timeout_s:
                    raise StackFailed(
                        f"{spec.name} was not ready after {spec.ready_timeout_s:.0f}s"
                        f" ({result.detail})"
                    )
                time.sleep(POLL_S)
        self.console.say(f"{spec.name} is ready ({status.elapsed:.1f}s)", "green")

    def watch(self) -> None:
        """Return when a stop is requested; raise StackFailed when a child dies."""
        while not self.stop.requested:
            self.check_running()
            time.sleep(POLL_S)

    def check_running(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                child.relay.join(timeout=2)
                raise StackFailed(_death_message(child, code))

    def stop_all(self) -> None:
        alive = [child for child in self.children if child.process.poll() is None]
        if alive:
            self.console.say("stopping the stack (Ctrl-C again kills at once) …", "yellow")
        for child in reversed(self.children):
            self._stop(child)

    def _stop(self, child: Child) -> None:
        process = child.process
        started = time.monotonic()
        killed = False
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            deadline = started + STOP_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                if self.stop.forced:
                    break
                time.sleep(0.05)
            if process.poll() is None:
                killed = True
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            how = "killed" if killed else "stopped"
            self.console.say(f"{how} {child.spec.name} ({time.monotonic() - started:.1f}s)")
        # Whatever the child left behind in its group goes too.
        _signal_group(process.pid, signal.SIGKILL)
        child.relay.join(timeout=2)

    def _relay(self, name: str, process: subprocess.Popen[bytes], tail: deque[str]) -> None:
        assert process.stdout is not None
        prefix = self.console.paint(f"{name:<{PREFIX_WIDTH}} |", SERVICE_COLORS.get(name, "bold"))
        for raw in process.stdout:
            line = logfmt.render(raw.decode("utf-8", errors="replace"))
            tail.append(line.text)
            text = self.console.paint(line.text, LEVEL_COLORS.get(line.level or "", ""))
            self.console.line(f"{prefix} {text}")
        process.stdout.close()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _death_message(child: Child, code: int) -> str:
    how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
    lines = [f"{child.spec.name} {how}; stopping the stack."]
    if child.tail:
        lines.append(f"  last lines of {child.spec.name}:")
        lines += [f"    {line}" for line in child.tail]
    text = " ".join(child.tail).lower()
    lines += [f"  hint: {hint}" for needle, hint in HINTS.items() if needle in text]
    return "\n".join(lines)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
