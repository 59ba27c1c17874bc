"""docker-compose.yml, checked without a Docker engine: services, health, env, ports, profiles,
networks, and Redis's ACL (against a real redis-server started with the file's own flags)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from stack_harness import CONTRACT_VARIABLES, load_compose, mount

from dm.settings import DmSettings
from gateway.settings import GatewaySettings
from llm_local.settings import DEFAULT_MODELS, LlmSettings
from support.stack import dm_stack
from voicectl.redis_server import find_redis_server, free_port, port_is_free

CORE = {"redis": None, "llm-local": LlmSettings, "dm": DmSettings, "gateway": GatewaySettings}
PROFILES = {
    "vllm": ["vllm"],
    "ollama": ["ollama"],
    "ollama-pull": ["ollama"],
    "llamacpp": ["llamacpp"],
}
ONE_SHOT = {"ollama-pull"}  # jobs that run to completion: no healthcheck, awaited as completed
INTERPOLATION = re.compile(r"^\$\{(\w+)(?::?[-?](.*))?\}$")
PINNED_IMAGE = re.compile(r"^[\w./-]+:[\w.-]*\d[\w.-]*$")
REQUIRED_PASSWORD = "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env (see env.example)}"
REDIS_PASSWORD = "${REDIS_PASSWORD}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is a mapping, so names are checked one by one"
    return {key: str(value) for key, value in env.items()}


def default_of(value: str) -> str:
    """`${VAR:-x}` → x; a literal stays itself."""
    match = INTERPOLATION.match(value)
    if match is None:
        return value
    return match.group(2) if value.startswith(f"${{{match.group(1)}:-") else ""


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == set(CORE) | set(PROFILES)
    for name in CORE:
        # The default `docker compose up` (no profile) is the whole embedded stack.
        assert "profiles" not in services[name], name
    for name, profiles in PROFILES.items():
        assert services[name]["profiles"] == profiles


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "build" not in service:
            assert PINNED_IMAGE.match(service["image"]), f"{name}: pin the image's version"
            assert not service["image"].endswith(":latest"), name


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert service["healthcheck"]["start_period"], name


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            wanted = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule["condition"] == wanted, f"{name} -> {target}"
            # Only an upstream behind a profile may be absent (for services outside it).
            optional = target in PROFILES and name not in PROFILES
            assert rule.get("required", True) is not optional, f"{name} -> {target}"

    def deps(name: str) -> set[str]:
        return set(services[name].get("depends_on", {}))

    assert deps("dm") == {"redis", "llm-local"}
    assert deps("gateway") == {"dm"}
    assert deps("llm-local") == {"vllm", "ollama-pull", "llamacpp"}
    assert deps("ollama-pull") == {"ollama"}


@pytest.mark.parametrize("name", ["llm-local", "dm", "gateway"])
def test_environment_names_are_the_services_settings(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    settings = CORE[name]
    assert settings is not None
    known = {field.upper() for field in settings.model_fields}
    env = environment(services[name])
    assert set(env) <= known, f"{name}: unknown settings {set(env) - known}"
    # Containers listen on all interfaces: the services allow that only with keys.
    assert env["HOST"] == "0.0.0.0"


def test_contract_variables_reach_the_services(services: dict[str, dict[str, Any]]) -> None:
    given = set().union(*(environment(services[name]) for name in ("llm-local", "dm", "gateway")))
    assert set(CONTRACT_VARIABLES) <= given
    assert "?" in environment(services["gateway"])["GATEWAY_API_KEYS"]  # required, not empty
    assert "?" in environment(services["llm-local"])["LLM_API_KEY"]
    assert (
        environment(services["dm"])["LLM_API_KEY"]
        == environment(services["llm-local"])["LLM_API_KEY"]
    )


def test_every_hop_is_keyed(services: dict[str, dict[str, Any]]) -> None:
    dm, gateway = environment(services["dm"]), environment(services["gateway"])
    assert "?" in dm["DM_API_KEY"]  # dm listens beyond loopback: a key is required
    assert gateway["DM_API_KEY"] == dm["DM_API_KEY"]
    redis_url = urlsplit(dm["REDIS_URL"])
    assert redis_url.username == "dm"
    assert redis_url.password == REDIS_PASSWORD
    assert environment(services["redis"])["REDISCLI_AUTH"] == REDIS_PASSWORD
    assert "--user dm" in " ".join(services["redis"]["healthcheck"]["test"])


def test_internal_urls_and_ports_line_up(services: dict[str, dict[str, Any]]) -> None:
    llm, dm, gateway = (environment(services[n]) for n in ("llm-local", "dm", "gateway"))
    redis_url = urlsplit(dm["REDIS_URL"])
    assert (redis_url.hostname, redis_url.port) == ("redis", 6379)
    llm_url = urlsplit(dm["LLM_BASE_URL"])
    assert (llm_url.hostname, llm_url.port, llm_url.path) == (
        "llm-local",
        int(llm["LLM_PORT"]),
        "/v1",
    )
    dm_url = urlsplit(gateway["DM_URL"])
    assert (dm_url.hostname, dm_url.port) == ("dm", int(dm["DM_PORT"]))
    for name, port_var in (
        ("llm-local", "LLM_PORT"),
        ("dm", "DM_PORT"),
        ("gateway", "GATEWAY_PORT"),
    ):
        port = environment(services[name])[port_var]
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in probe, f"{name}'s healthcheck probes its own port"


def test_published_ports(services: dict[str, dict[str, Any]]) -> None:
    # The gateway faces the world only when told to: loopback by default.
    assert services["gateway"]["ports"] == [
        "${GATEWAY_PUBLISH_ADDRESS:-127.0.0.1}:${GATEWAY_PORT:-8080}:8080"
    ]
    assert services["llm-local"]["ports"] == ["127.0.0.1:${LLM_PORT:-8000}:8000"]
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed name prevents scaling"
        if name not in ("gateway", "llm-local"):
            assert "ports" not in service, f"{name} stays on the compose network"
    # dm scales: no host port, no fixed name; the gateway reaches every replica by name.
    assert services["dm"]["expose"] == ["8081"]


def test_networks_keep_each_service_to_its_neighbours(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    networks = compose["networks"]
    assert set(networks) == {"edge", "internal", "models"}
    assert networks["internal"]["internal"] is True  # gateway, dm and Redis: no way out
    expected = {
        "gateway": ["edge", "internal"],
        "dm": ["internal", "models"],
        "redis": ["internal"],
        "llm-local": ["models"],
    }
    for name, service in services.items():
        assert service["networks"] == expected.get(name, ["models"]), name


def test_redis_is_keyed_and_bounded(services: dict[str, dict[str, Any]]) -> None:
    args = services["redis"]["command"]
    flags = " ".join(args)
    assert "--maxmemory ${REDIS_MAXMEMORY:-256mb}" in flags
    assert "--maxmemory-policy noeviction" in flags  # full: writes fail, calls are not evicted
    assert "--user default off" in flags
    dm_user = args[args.index("dm") : args.index("dm") + 8]
    assert dm_user == [
        "dm",
        "on",
        ">" + REQUIRED_PASSWORD,  # compose refuses to start without it
        "~dm:*",
        "resetchannels",
        "&dm:*",
        "+@all",
        "-@dangerous",
    ]


def redis_flags(command: list[str], password: str) -> list[str]:
    """The compose file's redis-server flags for a local run: its password, no files."""
    flags = [arg.replace(REQUIRED_PASSWORD, password) for arg in command[1:]]
    flags[flags.index("--appendonly") + 1] = "no"
    return [flag.replace("${REDIS_MAXMEMORY:-256mb}", "64mb") for flag in flags]


@pytest.fixture
def acl_redis(services: dict[str, dict[str, Any]], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """redis-server with the compose file's ACL and memory flags; yields (port, password)."""
    password = "compose-test-" + "x" * 12
    port = free_port()
    args = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--dir", str(tmp_path), *redis_flags(services["redis"]["command"], password)]
    log = tmp_path / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while port_is_free(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield str(port), password
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_redis_acl_lets_dm_run_a_call_and_nothing_else(
    acl_redis: tuple[str, str],
) -> None:
    port, password = acl_redis
    dm_url = f"redis://dm:{password}@127.0.0.1:{port}/0"
    with dm_stack(dm_url, dm_rules="off") as stack:
        async with httpx.AsyncClient(base_url=stack.dm_url) as client:
            body = {"flow": "booking_mri", "lang": "en", "call_id": "acl-1"}
            assert (await client.post("/v1/calls", json=body)).status_code == 201
            turn = {"turn_id": "t1", "text": "Maria"}
            assert (await client.post("/v1/calls/acl-1/turns", json=turn)).status_code == 200
            assert (
                await client.post("/v1/calls/acl-1/turns/t1/interrupt", json={})
            ).status_code == 200
            assert (await client.delete("/v1/calls/acl-1")).status_code == 200
            assert (await client.get("/readyz")).json()["checks"]["redis"] == "ok"
    dm = redis.Redis.from_url(dm_url)
    anonymous = redis.Redis(port=int(port))
    try:
        assert dm.info("memory")["maxmemory_policy"] == "noeviction"
        for command in (
            ("FLUSHALL",),
            ("CONFIG", "GET", "*"),
            ("KEYS", "*"),
            ("DEBUG", "SLEEP", "0"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                dm.execute_command(*command)
        with pytest.raises(redis.exceptions.NoPermissionError):
            dm.set("not-dm:key", "1")  # only its own keys
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
    finally:
        dm.close()
        anonymous.close()


def test_redis_keeps_an_append_only_file_on_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    source, target = mount(redis["volumes"][0])
    assert target == "/data"
    assert source in compose["volumes"]


def test_llm_local_defaults_to_the_embedded_backend(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["llm-local"])
    assert default_of(env["LLM_BACKEND"]) == "embedded"
    assert default_of(env["LLM_UPSTREAM_URL"]) == ""


def test_vllm_profile_uses_the_seeds_gpu_settings(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    vllm = services["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    args = vllm["command"]
    model = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--model="))
    assert default_of(model) == DEFAULT_MODELS["vllm"] == "Qwen/Qwen2.5-14B-Instruct-AWQ"
    for flag in (
        "--max-model-len=2048",
        "--gpu-memory-utilization=0.75",
        "--quantization=awq",
        "--enable-chunked-prefill",
        "--enable-prefix-caching",
        "--port=8000",
    ):
        assert flag in args
    device = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    source, target = mount(vllm["volumes"][0])
    assert target == "/root/.cache/huggingface"
    assert source in compose["volumes"]


def test_ollama_and_llamacpp_profiles(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert services["ollama"]["image"].startswith("ollama/ollama:")
    assert services["ollama-pull"]["image"] == services["ollama"]["image"]
    pulled = services["ollama-pull"]["entrypoint"][-1]
    assert default_of(pulled) == DEFAULT_MODELS["ollama"]
    assert mount(services["ollama"]["volumes"][0])[0] in compose["volumes"]

    llamacpp = services["llamacpp"]
    assert llamacpp["image"].startswith("ghcr.io/ggml-org/llama.cpp:server")
    assert mount(llamacpp["volumes"][0])[1] == "/models"
    model = next(arg for arg in llamacpp["command"] if arg.startswith("--model="))
    assert model.startswith("--model=/models/")
    alias = next(arg.split("=", 1)[1] for arg in llamacpp["command"] if arg.startswith("--alias="))
    assert default_of(alias) == DEFAULT_MODELS["llamacpp"]
