"""Start the services as child processes on free loopback ports, and stop them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from voicectl.redis_server import RedisProcess, free_port


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 in {timeout_s} s")
        time.sleep(0.1)


@contextmanager
def child(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def redis() -> Iterator[str]:
    with RedisProcess(free_port()) as server:
        yield server.url


@contextmanager
def instant_llm(stall_s: float = 0.0) -> Iterator[str]:
    """An instant (or stalling) OpenAI-compatible LLM; yields its base URL (…/v1)."""
    port = free_port()
    with child([sys.executable, "-m", "voicectl.scripted_llm", str(port), str(stall_s)]):
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def dm(redis_url: str, llm_url: str, **env: str) -> Iterator[str]:
    port = free_port()
    settings = {
        "REDIS_URL": redis_url,
        "LLM_BASE_URL": llm_url,
        "DM_PORT": str(port),
        "LOG_LEVEL": "warning",
        **env,
    }
    with child([sys.executable, "-m", "dm"], settings):
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        yield f"http://127.0.0.1:{port}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


@contextmanager
def floor_app(redis_url: str) -> Iterator[str]:
    """bench.dm.floor_app under uvicorn, as dm runs (uvloop, httptools, no access log)."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "bench.dm.floor_app:app", "--port", str(port)]
    args += ["--log-level", "warning", "--no-access-log"]
    with child(args, {"REDIS_URL": redis_url}):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"


# Benchmarks measure the gateway, not its limiter: limits far above any load here.
UNLIMITED = {
    "GATEWAY_KEY_RATE": "1000000",
    "GATEWAY_KEY_BURST": "1000000",
    "GATEWAY_CALL_RATE": "1000000",
    "GATEWAY_CALL_BURST": "1000000",
}


@contextmanager
def llm_local() -> Iterator[str]:
    """llm-local on its embedded model; yields its OpenAI base URL (…/v1)."""
    port = free_port()
    env = {"LLM_PORT": str(port), "LLM_BACKEND": "embedded", "LOG_LEVEL": "warning"}
    with child([sys.executable, "-m", "llm_local"], env):
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=600)
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def gateway(dm_url: str) -> Iterator[tuple[str, int]]:
    """`python -m gateway` in front of `dm_url`; yields its ws:// base URL and its pid."""
    port = free_port()
    env = {"DM_URL": dm_url, "GATEWAY_PORT": str(port), "LOG_LEVEL": "warning", **UNLIMITED}
    with child([sys.executable, "-m", "gateway"], env) as process:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"ws://127.0.0.1:{port}", process.pid
