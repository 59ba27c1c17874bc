"""The stop signals of `voicectl stack`: the first stops gracefully, the second kills,
and the handler takes no lock (one that did, a threading.Event's, once hung the stack
for good when SIGTERM landed while the main thread held that lock)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time

from voicectl.console import Console
from voicectl.supervisor import StopFlags, Supervisor


def test_first_signal_requests_a_stop_the_second_forces_it() -> None:
    flags = StopFlags()
    flags.on_signal()
    assert (flags.requested, flags.forced) == (True, False)
    flags.on_signal()
    flags.on_signal()
    assert (flags.requested, flags.forced) == (True, True)


def test_a_signal_while_watching_ends_the_watch() -> None:
    flags = StopFlags()
    supervisor = Supervisor(Console(io.StringIO()), {}, flags)
    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: flags.on_signal())
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        started = time.monotonic()
        supervisor.watch()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert flags.requested
    assert time.monotonic() - started < 5.0
