"""`voicectl call` against a running gateway (dm, Redis and a scripted LLM behind it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_harness import clean_env

from gateway.app import create_app
from gateway.settings import GatewaySettings
from support.servers import ServerThread
from support.stack import dm_stack
from voicectl.__main__ import main
from voicectl.redis_server import free_port

BOOKING_EN = [
    "My name is Maria",
    "my number is 8 916 123 45 67",
    "a knee MRI please",
    "tomorrow",
    "at 3 pm",
    "yes",
]


def serve_gateway(dm_url: str, keys: str = "") -> ServerThread:
    settings = GatewaySettings(_env_file=None, dm_url=dm_url, gateway_api_keys=keys)  # type: ignore[call-arg]
    return ServerThread(create_app(settings), ws=True)


@pytest.fixture
def gateway_url(redis_url: str) -> Iterator[str]:
    with dm_stack(redis_url) as stack, serve_gateway(stack.dm_url) as gateway:
        yield gateway.url.replace("http://", "ws://")


def call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicectl", "call", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_script_books_an_appointment(gateway_url: str, tmp_path: Path) -> None:
    script = tmp_path / "booking.txt"
    script.write_text("\n".join(["", *BOOKING_EN, ""]), encoding="utf-8")
    result = call(
        "--url", gateway_url, "--lang", "en", "--call-id", "cli-book", "--script", str(script)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "call cli-book started: flow booking_mri (en), node ask_name" in out
    assert "agent> Hello! MedScan clinic" in out  # the greeting
    assert "you> My name is Maria" in out
    # The words decide: no LLM call, no backchannel, the reply at once.
    assert "(backchannel)" not in out
    assert "ask_name → ask_phone · slots: name=Maria · dm " in out
    assert " ms (by rules, no LLM call)" in out
    assert "heard first words " in out
    assert "confirm → done" in out
    assert "call done: completed" in out
    assert "call ended; summary:" in out
    assert '"name": "Maria"' in out
    assert '"exam": "mri_knee"' in out


def test_end_hangs_up_and_the_call_resumes_no_more(gateway_url: str, tmp_path: Path) -> None:
    script = tmp_path / "short.txt"
    script.write_text("Мария\n/end\nэто уже не отправится\n", encoding="utf-8")
    result = call("--url", gateway_url, "--call-id", "cli-short", "--script", str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node ask_name" in result.stdout
    assert "ask_name → ask_phone" in result.stdout
    assert "call ended; summary:" in result.stdout
    assert "не отправится" not in result.stdout

    again = call("--url", gateway_url, "--call-id", "cli-short", "--script", str(script))
    assert again.returncode == 1
    assert "the call did not start" in again.stdout


def test_an_unknown_flow_is_refused(gateway_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "--url", gateway_url, "--flow", "pizza_order"]) == 1
    assert "the call did not start: " in capsys.readouterr().out


def test_a_missing_token_is_explained(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    silent = tmp_path / "silent.txt"
    silent.write_text("", encoding="utf-8")
    with dm_stack(redis_url) as stack, serve_gateway(stack.dm_url, keys="k-1") as gateway:
        url = gateway.url.replace("http://", "ws://")
        assert main(["call", "--url", url, "--script", str(silent)]) == 1
        assert "closed the socket: 1008 auth failed" in capsys.readouterr().out
        assert main(["call", "--url", url, "--token", "k-1", "--script", str(silent)]) == 0
        assert "call ended; summary:" in capsys.readouterr().out


def test_no_gateway_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    assert main(["call", "--url", url]) == 1
    out = capsys.readouterr().out
    assert f"cannot reach the gateway at {url}/v1/calls/" in out
    assert "is `make run` running?" in out
