"""Terminal output shared by threads: coloured prefixed lines and one live status line.

On a terminal the status line is a spinner with the elapsed time, redrawn under
the log lines; off a terminal (a pipe, CI, a test) it becomes a plain line now
and then, so logs stay readable.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

COLORS = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "dim": "2",
    "bold": "1",
}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PLAIN_STATUS_EVERY_S = 10.0


def wants_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


class Console:
    def __init__(self, stream: TextIO, *, color: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.color = wants_color(stream) if color is None else color
        self._lock = threading.RLock()
        self._status: str | None = None

    def paint(self, text: str, color: str) -> str:
        if not self.color or color not in COLORS:
            return text
        return f"\x1b[{COLORS[color]}m{text}\x1b[0m"

    def line(self, text: str) -> None:
        """Print one line, keeping the status line (if any) below it."""
        with self._lock:
            if self._status is not None and self.interactive:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            if self._status is not None and self.interactive:
                self.stream.write(self._status)
            self.stream.flush()

    def say(self, text: str, color: str = "bold") -> None:
        self.line(self.paint("voicectl", color) + " " + text)

    def error(self, text: str) -> None:
        self.line(self.paint("voicectl: error:", "red") + " " + text)

    @contextmanager
    def status(self, text: str) -> Iterator[StatusLine]:
        """A live line for a wait: `update()` its detail; it ends with `done()` or the block."""
        status = StatusLine(self, text)
        status.start()
        try:
            yield status
        finally:
            status.stop()

    def draw_status(self, text: str | None) -> None:
        with self._lock:
            if self.interactive:
                self.stream.write("\r\x1b[K" + (text or ""))
                self.stream.flush()
            self._status = text


class StatusLine:
    def __init__(self, console: Console, text: str) -> None:
        self.console = console
        self.text = text
        self.detail = ""
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, detail: str) -> None:
        self.detail = detail

    def start(self) -> None:
        if not self.console.interactive:
            self.console.say(f"{self.text} …", "blue")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.console.draw_status(None)

    def _run(self) -> None:
        frame = 0
        last_plain = time.monotonic()
        while not self._stop.wait(0.1):
            detail = f" · {self.detail}" if self.detail else ""
            if self.console.interactive:
                spinner = self.console.paint(SPINNER[frame % len(SPINNER)], "blue")
                self.console.draw_status(f"{spinner} {self.text} {self.elapsed:4.1f}s{detail}")
                frame += 1
            elif time.monotonic() - last_plain >= PLAIN_STATUS_EVERY_S:
                last_plain = time.monotonic()
                self.console.say(f"… {self.text} ({self.elapsed:.0f}s{detail})", "blue")
