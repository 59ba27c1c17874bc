"""Create .venv with exactly what uv.lock pins, with a heartbeat during long steps.

Stdlib only: it runs before anything is installed. The steps:

1. uv, pinned with hashes in requirements/uv.txt, goes into a small venv of its own
   outside the checkout (one per uv version and machine).
2. `uv sync --frozen` makes .venv exactly the lock: every extra and the dev group, the
   project itself editable; anything else is removed.
3. llama-cpp-python is the one exception: it compiles from source (about 6 minutes on
   2 cores) with flags for this CPU, so it is built once per machine and flag set into a
   wheel cache outside the checkout, from the sdist whose hash the lock pins
   (requirements/llama.txt; its build backend pinned by requirements/llama-build.txt),
   and installed from there. Later installs and clean checkouts take seconds.

The build is not `-march=native`: on CPUs that announce AMX (Sapphire Rapids and later)
ggml's AMX kernels crash with SIGSEGV under hypervisors that do not give the process the
tile state. We enable the vector extensions the CPU has (AVX2, AVX-512, VNNI...) one by
one and leave AMX out. LLAMA_CMAKE_ARGS replaces our choice (e.g. for a CUDA build).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
REQUIREMENTS = ROOT / "requirements"
LOCK = ROOT / "uv.lock"
HEARTBEAT_S = 20.0
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice-dm"
WHEEL_CACHE = CACHE / "wheels"
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


def pinned_version(requirements: Path, name: str) -> str:
    """The version `requirements` pins `name` to (`name==1.2.3`)."""
    found = re.search(rf"^{re.escape(name)}==(\S+)", requirements.read_text(), re.MULTILINE)
    if found is None:
        sys.exit(f"bootstrap: {requirements.relative_to(ROOT)} does not pin {name}; run make lock")
    return found.group(1)


def ensure_uv() -> Path:
    """The pinned uv, installed once per machine into a venv of its own."""
    version = pinned_version(REQUIREMENTS / "uv.txt", "uv")
    tools = CACHE / f"uv-{version}"
    uv = tools / "bin" / "uv"
    if uv.exists():
        return uv
    print(f"==> Installing uv {version} (pinned in requirements/uv.txt) into {tools}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(tools)
    pip = [str(tools / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    run_with_heartbeat(
        [*pip, "--require-hashes", "-r", str(REQUIREMENTS / "uv.txt")], "installing uv"
    )
    return uv


def build_llama_wheel(python: Path, cmake_args: str) -> Path:
    """The llama-cpp-python wheel for these build flags, built once per machine."""
    version = pinned_version(REQUIREMENTS / "llama.txt", "llama-cpp-python")
    key = hashlib.sha256(f"llama-cpp-python=={version} {cmake_args}".encode()).hexdigest()[:16]
    folder = WHEEL_CACHE / key
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"==> Building llama-cpp-python {version} from source: about 6 minutes on 2 cores, "
        "once per machine",
        flush=True,
    )
    print(f"    CMAKE_ARGS={cmake_args}", flush=True)
    print(f"    wheel cache: {folder}", flush=True)
    # PIP_CONSTRAINT reaches the isolated build environment: the build backend is pinned too.
    env = {
        **os.environ,
        "CMAKE_ARGS": cmake_args,
        "PIP_CONSTRAINT": str(REQUIREMENTS / "llama-build.txt"),
    }
    command = [
        str(python),
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-cache-dir",
        "--require-hashes",
        "--no-binary",
        "llama-cpp-python",
        "-w",
        str(folder),
        "-r",
        str(REQUIREMENTS / "llama.txt"),
    ]
    run_with_heartbeat(command, "building llama-cpp-python", env)
    return sorted(folder.glob("llama_cpp_python-*.whl"))[-1]


def run_with_heartbeat(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
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
    tail: list[str] = []
    for line in proc.stdout:
        last_output[0] = time.monotonic()
        tail = [*tail[-19:], line.rstrip()]
        if line.lstrip().startswith(
            ("Collecting", "Building", "Successfully", "Installed", "Resolved", "ERROR", "error")
        ):
            print("    " + line.strip(), flush=True)
    done.set()
    if proc.wait() != 0:
        print("\n".join("    " + line for line in tail), flush=True)
        sys.exit(f"bootstrap: {what} failed (exit {proc.returncode}); its last lines are above")


def main() -> None:
    cmake_args = llama_cmake_args()
    digest = hashlib.sha256()
    for pinned in (LOCK, REQUIREMENTS / "llama.txt", REQUIREMENTS / "llama-build.txt"):
        digest.update(pinned.read_bytes())
    stamp_text = f"{digest.hexdigest()}\n{cmake_args}\n"
    if STAMP.exists() and STAMP.read_text() == stamp_text:
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"==> Creating {VENV.relative_to(ROOT)}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    uv = ensure_uv()
    print("==> Installing what uv.lock pins into .venv", flush=True)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)}
    run_with_heartbeat(
        [
            str(uv),
            "sync",
            "--frozen",
            "--all-extras",
            "--no-install-package",
            "llama-cpp-python",
            "--python",
            str(python),
            "--project",
            str(ROOT),
        ],
        "installing dependencies",
        env,
    )
    wheel = build_llama_wheel(python, cmake_args)
    run_with_heartbeat(
        [str(uv), "pip", "install", "--python", str(python), "--no-deps", str(wheel)],
        "installing llama-cpp-python",
    )
    STAMP.write_text(stamp_text)
    print("==> .venv is ready", flush=True)


if __name__ == "__main__":
    main()
