"""`make bench`: what a caller hears, measured on the real stack.

Plays the booking corpus once against dm (one caller at a time, embedded model, rules on)
and then the end-to-end callers' benchmark at 1 and 4 callers. Each benchmark is also its
own command; BENCHMARKS.md lists them all with their durations.
"""

from __future__ import annotations

import subprocess
import sys

HEADLINE = [
    ["bench.dialogs", "--llm", "embedded"],
    ["bench.calls", "--callers", "1", "4", "--seconds", "30"],
]


def main() -> None:
    for args in HEADLINE:
        print(f"==> python -m {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", *args], check=True)


if __name__ == "__main__":
    main()
