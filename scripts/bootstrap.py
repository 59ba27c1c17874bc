"""Create .venv and install the project into it, with a heartbeat during long steps.

Stdlib only: it runs before anything is installed. The first install builds
llama-cpp-python from source (about 6 minutes on 2 cores); pip caches the
built wheel, so later installs take seconds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
EXTRAS = "embedded,redis-binary,dev,bench"
HEARTBEAT_S = 20.0


def _needs_install() -> bool:
    if not STAMP.exists():
        return True
    return (ROOT / "pyproject.toml").stat().st_mtime > STAMP.stat().st_mtime


def _run_with_heartbeat(cmd: list[str], what: str) -> None:
    started = time.monotonic()
    last_output = [started]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(5.0):
            if time.monotonic() - last_output[0] >= HEARTBEAT_S:
                elapsed = int(time.monotonic() - started)
                minutes, seconds = divmod(elapsed, 60)
                print(f"    ... still {what} ({minutes}m{seconds:02d}s elapsed)", flush=True)
                last_output[0] = time.monotonic()

    threading.Thread(target=heartbeat, daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        last_output[0] = time.monotonic()
        if line.startswith(("Collecting", "Building", "Successfully", "ERROR", "error")) or (
            "llama" in line and "started" in line
        ):
            print("    " + line.rstrip(), flush=True)
    done.set()
    if proc.wait() != 0:
        sys.exit(f"bootstrap: {what} failed (exit {proc.returncode}); rerun with the output above")


def main() -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"==> Creating {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not _needs_install():
        return
    print("==> Installing the project into .venv", flush=True)
    print(
        "    The first install builds llama-cpp-python from source: about 6 minutes on 2 cores.\n"
        "    pip caches the built wheel, so the next install takes seconds.",
        flush=True,
    )
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    _run_with_heartbeat([*pip, "--upgrade", "pip"], "upgrading pip")
    _run_with_heartbeat([*pip, "-e", f"{ROOT}[{EXTRAS}]"], "installing dependencies")
    STAMP.touch()
    print("==> .venv is ready", flush=True)


if __name__ == "__main__":
    main()
