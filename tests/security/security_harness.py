"""The services as real processes on loopback, every line they write kept, for the
security tests: the log audit, the OpenAPI runs and the WebSocket fuzzer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.types import ASGIApp

from support.llm_upstreams import ScriptedEngine
from support.servers import ServerThread
from voicectl.redis_server import free_port

START_TIMEOUT_S = 60.0
SERVICE_PREFIXES = ("REDIS_", "LLM_", "DM_", "GATEWAY_")
# The generated-input audits measure answers, not the gateway's limiter.
UNLIMITED = {
    f"GATEWAY_{name}": "1000000" for name in ("KEY_RATE", "KEY_BURST", "CALL_RATE", "CALL_BURST")
}


def clean_env(**values: str) -> dict[str, str]:
    """This shell's environment without its service settings, plus `values`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SERVICE_PREFIXES) and key not in ("HOST", "LOG_LEVEL")
    }
    return {**env, **values}


@dataclass
class Service:
    """One service as a child process; what it writes (stdout and stderr) goes to a file."""

    name: str
    module: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, ready_url: str) -> None:
        with self.log_path.open("wb") as log:
            # cwd away from the repository: no developer's .env is read.
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd="/tmp",
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(ready_url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")


@dataclass
class Stack:
    """gateway → dm → llm-local (openai backend) → a scripted upstream, and Redis."""

    gateway_url: str
    dm_url: str
    llm_url: str  # llm-local's base URL (without /v1)
    services: list[Service]

    def stop(self) -> None:
        for service in self.services:
            service.stop()

    def lines(self) -> dict[str, list[str]]:
        return {service.name: service.output().splitlines() for service in self.services}


@dataclass(frozen=True)
class Keys:
    gateway: str = ""  # GATEWAY_API_KEYS (one key)
    dm: str = ""  # DM_API_KEY
    llm: str = ""  # LLM_API_KEY
    upstream: str = ""  # LLM_UPSTREAM_API_KEY


@contextmanager
def running_stack(
    redis_url: str,
    log_dir: Path,
    upstream_app: ASGIApp,
    keys: Keys = Keys(),
    log_level: str = "info",
    **extra: str,
) -> Iterator[Stack]:
    """The three services as processes in front of `upstream_app`, an OpenAI-compatible
    server llm-local proxies to; `extra` is environment for all three."""
    ports = {name: free_port() for name in ("llm-local", "dm", "gateway")}
    with ExitStack() as stack:
        upstream = stack.enter_context(ServerThread(upstream_app))
        common = {"LOG_LEVEL": log_level, **extra}
        llm_local = Service(
            "llm-local",
            "llm_local",
            clean_env(
                **common,
                LLM_PORT=str(ports["llm-local"]),
                LLM_BACKEND="openai",
                LLM_UPSTREAM_URL=upstream.url + "/v1",
                LLM_UPSTREAM_API_KEY=keys.upstream,
                LLM_API_KEY=keys.llm,
            ),
            log_dir / "llm-local.log",
        )
        dm = Service(
            "dm",
            "dm",
            clean_env(
                **common,
                DM_PORT=str(ports["dm"]),
                REDIS_URL=redis_url,
                LLM_BASE_URL=f"http://127.0.0.1:{ports['llm-local']}/v1",
                LLM_API_KEY=keys.llm,
                DM_API_KEY=keys.dm,
                DM_LLM_WARM_UP="false",
                DM_RULES="off",  # every turn's words go through the LLM's prompt
            ),
            log_dir / "dm.log",
        )
        gateway = Service(
            "gateway",
            "gateway",
            clean_env(
                **common,
                GATEWAY_PORT=str(ports["gateway"]),
                DM_URL=f"http://127.0.0.1:{ports['dm']}",
                DM_API_KEY=keys.dm,
                GATEWAY_API_KEYS=keys.gateway,
            ),
            log_dir / "gateway.log",
        )
        running = Stack(
            gateway_url=f"http://127.0.0.1:{ports['gateway']}",
            dm_url=f"http://127.0.0.1:{ports['dm']}",
            llm_url=f"http://127.0.0.1:{ports['llm-local']}",
            services=[llm_local, dm, gateway],
        )
        stack.callback(running.stop)
        llm_local.start(running.llm_url + "/health")
        dm.start(running.dm_url + "/healthz")
        gateway.start(running.gateway_url + "/healthz")
        yield running


@contextmanager
def audited_stack(redis_url: str, log_dir: Path, keys: Keys) -> Iterator[Stack]:
    """The stack with its limits lifted, in front of an upstream that serves every route
    llm-local proxies (chat, completions, embeddings): for the generated-input audits."""
    upstream = ScriptedEngine("openai").app()
    with running_stack(redis_url, log_dir, upstream, keys, **UNLIMITED) as running:
        yield running
