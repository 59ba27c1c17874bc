"""What `voicectl stack` decides to run, and how it words a taken port or a log line."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from voicectl.logfmt import render
from voicectl.plan import HttpProbe, PlanError, StackPlan, StackSettings, build_plan
from voicectl.ports import bind_problem, port_problems
from voicectl.readiness import describe


def plan_for(**values: Any) -> StackPlan:
    settings = StackSettings(_env_file=None, **values)  # type: ignore[call-arg]
    return build_plan(
        settings, run_dir=Path(".run"), find_redis=lambda: "redis-server", python="py"
    )


def test_defaults_run_everything_on_the_contract_ports() -> None:
    plan = plan_for()
    assert [(s.name, s.port) for s in plan.services] == [
        ("redis", 6379),
        ("llm-local", 8000),
        ("dm", 8081),
        ("gateway", 8080),
    ]
    assert plan.env["REDIS_URL"] == "redis://localhost:6379/0"
    assert plan.env["LLM_BASE_URL"] == "http://127.0.0.1:8000/v1"
    assert plan.env["DM_URL"] == "http://127.0.0.1:8081"
    assert plan.embedded_model
    assert plan.notes == ()
    redis = plan.services[0]
    assert "--appendonly" in redis.argv
    assert "yes" in redis.argv
    assert str(Path(".run") / "redis-6379") in redis.argv


def test_ports_move_the_whole_stack() -> None:
    plan = plan_for(
        gateway_port=9080, dm_port=9081, llm_port=9000, redis_url="redis://127.0.0.1:6390/2"
    )
    assert [s.port for s in plan.services] == [6390, 9000, 9081, 9080]
    assert plan.env["LLM_BASE_URL"] == "http://127.0.0.1:9000/v1"
    assert plan.env["DM_URL"] == "http://127.0.0.1:9081"
    assert plan.env["GATEWAY_PORT"] == "9080"
    assert plan.gateway_ws == "ws://127.0.0.1:9080"


def test_an_llm_elsewhere_is_used_as_given() -> None:
    plan = plan_for(llm_base_url="http://gpu-box:8000/v1")
    assert plan.service("llm-local") is None
    assert not plan.embedded_model
    assert plan.env["LLM_BASE_URL"] == "http://gpu-box:8000/v1"
    assert any("LLM_BASE_URL points elsewhere" in note for note in plan.notes)


def test_a_local_llm_on_another_port_is_elsewhere_too() -> None:
    assert plan_for(llm_base_url="http://localhost:8001/v1").service("llm-local") is None
    plan = plan_for(llm_base_url="http://localhost:9000/v1", llm_port=9000)
    assert plan.service("llm-local") is not None


def test_a_proxy_backend_needs_no_model_file() -> None:
    assert not plan_for(llm_backend="vllm").embedded_model


def test_a_remote_redis_is_used_as_given_and_its_password_not_shown() -> None:
    plan = plan_for(redis_url="redis://:s3cret@cache.internal:6379/0")
    assert plan.service("redis") is None
    assert plan.env["REDIS_URL"] == "redis://:s3cret@cache.internal:6379/0"
    assert "s3cret" not in " ".join(plan.notes)
    assert "redis://:***@cache.internal:6379/0" in " ".join(plan.notes)


def test_a_local_redis_with_a_password_gets_it() -> None:
    redis = plan_for(redis_url="redis://:s3cret@localhost:6390/0").services[0]
    assert redis.argv[-2:] == ("--requirepass", "s3cret")
    assert "s3cret" not in redis.url


def test_dm_elsewhere_is_not_started() -> None:
    plan = plan_for(dm_url="http://dm.internal:8081")
    assert plan.service("dm") is None
    assert plan.env["DM_URL"] == "http://dm.internal:8081"


def test_all_interfaces_are_probed_on_loopback() -> None:
    plan = plan_for(host="0.0.0.0")
    assert plan.env["HOST"] == "0.0.0.0"
    gateway = plan.service("gateway")
    assert gateway is not None
    assert gateway.probe == HttpProbe("http://127.0.0.1:8080/readyz")


def test_two_services_on_one_port_are_refused() -> None:
    with pytest.raises(PlanError, match="DM_PORT and LLM_PORT are both port 9000"):
        plan_for(dm_port=9000, llm_port=9000)
    with pytest.raises(PlanError, match="GATEWAY_PORT and REDIS_URL are both port 6379"):
        plan_for(gateway_port=6379)


def test_a_taken_port_is_named_with_its_setting_and_a_free_alternative() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert bind_problem("127.0.0.1", port) == "already in use"
        plan = plan_for(gateway_port=port, redis_url="redis://localhost:1/0")
        (message,) = [m for m in port_problems(plan) if f"port {port} " in m]
    assert f"port {port} for gateway (GATEWAY_PORT) is already in use on 127.0.0.1" in message
    assert f"ss -ltnp 'sport = :{port}'" in message
    assert "GATEWAY_PORT=" in message
    assert "make run" in message


def test_json_log_lines_become_readable() -> None:
    line = render(
        '{"event": "turn", "level": "info", "timestamp": "2026-11-22T01:42:58.1Z",'
        ' "service": "dm", "call_id": "c1", "total_ms": 19.5, "node": "ask name"}\n'
    )
    assert line.text == '01:42:58 info    turn call_id=c1 total_ms=19.5 node="ask name"'
    assert line.level == "info"
    plain = render("Redis is starting\n")
    assert (plain.text, plain.level) == ("Redis is starting", None)
    assert render("{not json").text == "{not json"


def test_not_ready_answers_say_why() -> None:
    body = {"status": "not_ready", "checks": {"redis": "ok", "llm": "unreachable: ConnectError"}}
    assert describe(503, body) == "llm: unreachable: ConnectError"
    error = {"error": {"message": "the embedded backend is starting", "code": "not_ready"}}
    assert describe(503, error) == "the embedded backend is starting"
    assert describe(502, {}) == "HTTP 502"


def test_dot_env_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("GATEWAY_PORT=9080\nDM_PORT=9081\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_PORT", raising=False)
    monkeypatch.setenv("DM_PORT", "7081")
    plan = build_plan(StackSettings(), run_dir=Path(".run"), find_redis=lambda: "redis-server")
    assert plan.env["GATEWAY_PORT"] == "9080"
    assert plan.env["DM_PORT"] == "7081"
