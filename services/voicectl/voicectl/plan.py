"""What `voicectl stack` runs: services, ports, URLs and the environment the children get.

Pure: it reads settings (environment variables, then `.env`, like every service)
and decides; nothing is started here. The rules, from CONTRACT.md:
- a local `REDIS_URL` (loopback host) gets a Redis started on its port; any other is used as given;
- llm-local runs on LLM_PORT unless `LLM_BASE_URL` points elsewhere (another host or port);
- dm runs on DM_PORT unless `DM_URL` points elsewhere; the gateway always runs on GATEWAY_PORT.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from svckit.settings import ServiceSettings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
DEFAULT_REDIS_PORT = 6379


class PlanError(ValueError):
    """Settings the stack cannot run with; the message says which and why."""


class StackSettings(ServiceSettings):
    """The contract's variables as far as the stack needs them (same names, same `.env`)."""

    redis_url: str = "redis://localhost:6379/0"
    llm_base_url: str = ""  # empty: this stack's llm-local on LLM_PORT
    dm_url: str = ""  # empty: this stack's dm on DM_PORT
    gateway_port: int = 8080
    dm_port: int = 8081
    llm_port: int = 8000
    llm_backend: str = "embedded"
    llm_model_path: str = ""
    gateway_api_keys: str = ""


@dataclass(frozen=True)
class HttpProbe:
    """Ready when GET `url` answers 200."""

    url: str


@dataclass(frozen=True)
class RedisProbe:
    """Ready when Redis at `url` answers PING."""

    url: str


Probe = HttpProbe | RedisProbe


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    setting: str  # the variable that sets the port, for messages
    argv: tuple[str, ...]
    probe: Probe
    ready_timeout_s: float
    url: str  # where it serves, for the banner


@dataclass(frozen=True)
class StackPlan:
    services: tuple[ServiceSpec, ...]  # in start order
    env: dict[str, str]  # set for every child, over the inherited environment
    host: str
    gateway_http: str
    gateway_ws: str
    redis_url: str
    llm_base_url: str
    dm_url: str
    embedded_model: bool  # llm-local runs the embedded backend: the model must be found
    model_path: str
    api_keys: tuple[str, ...]
    data_dir: Path | None  # Redis's append-only file lives here
    notes: tuple[str, ...] = field(default=())

    def service(self, name: str) -> ServiceSpec | None:
        return next((spec for spec in self.services if spec.name == name), None)


def connect_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_this_stack(url: str, port: int, host: str) -> bool:
    """Whether `url` names a server on this machine at `port`."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    local = LOOPBACK_HOSTS | ({host} - WILDCARD_HOSTS)
    return parts.hostname in local and (parts.port or default) == port


def build_plan(
    settings: StackSettings,
    *,
    run_dir: Path,
    find_redis: Callable[[], str],
    python: str = sys.executable,
) -> StackPlan:
    host = settings.host
    local = url_host(connect_host(host))
    _check_distinct_ports(settings)
    notes: list[str] = []
    services: list[ServiceSpec] = []

    redis_url = settings.redis_url
    redis = urlsplit(redis_url)
    data_dir: Path | None = None
    if redis.scheme == "redis" and redis.hostname in LOOPBACK_HOSTS:
        port = redis.port or DEFAULT_REDIS_PORT
        data_dir = run_dir / f"redis-{port}"
        services.append(
            ServiceSpec(
                name="redis",
                port=port,
                setting="REDIS_URL",
                argv=_redis_argv(find_redis(), port, data_dir, redis.password),
                probe=RedisProbe(redis_url),
                ready_timeout_s=15.0,
                url=safe_url(redis_url),
            )
        )
    else:
        notes.append(
            f"Redis: REDIS_URL is not on this machine, using {safe_url(redis_url)} as given"
        )

    llm_base_url = settings.llm_base_url or f"http://{local}:{settings.llm_port}/v1"
    if is_this_stack(llm_base_url, settings.llm_port, host):
        services.append(
            ServiceSpec(
                name="llm-local",
                port=settings.llm_port,
                setting="LLM_PORT",
                argv=(python, "-m", "llm_local"),
                probe=HttpProbe(f"http://{local}:{settings.llm_port}/health"),
                # The first load of a big GGUF on a slow disk takes minutes.
                ready_timeout_s=600.0,
                url=f"http://{local}:{settings.llm_port}/v1",
            )
        )
    else:
        notes.append(
            f"LLM: LLM_BASE_URL points elsewhere (not LLM_PORT {settings.llm_port} here), "
            f"using {safe_url(llm_base_url)} as given; llm-local is not started"
        )

    dm_url = settings.dm_url or f"http://{local}:{settings.dm_port}"
    if is_this_stack(dm_url, settings.dm_port, host):
        services.append(
            ServiceSpec(
                name="dm",
                port=settings.dm_port,
                setting="DM_PORT",
                argv=(python, "-m", "dm"),
                probe=HttpProbe(f"http://{local}:{settings.dm_port}/readyz"),
                ready_timeout_s=60.0,
                url=f"http://{local}:{settings.dm_port}",
            )
        )
    else:
        notes.append(
            f"dm: DM_URL points elsewhere (not DM_PORT {settings.dm_port} here), "
            f"using {safe_url(dm_url)} as given; dm is not started"
        )

    gateway_http = f"http://{local}:{settings.gateway_port}"
    services.append(
        ServiceSpec(
            name="gateway",
            port=settings.gateway_port,
            setting="GATEWAY_PORT",
            argv=(python, "-m", "gateway"),
            probe=HttpProbe(f"{gateway_http}/readyz"),
            ready_timeout_s=60.0,
            url=gateway_http,
        )
    )

    env = {
        "HOST": host,
        "REDIS_URL": redis_url,
        "LLM_BASE_URL": llm_base_url,
        "DM_URL": dm_url,
        "GATEWAY_PORT": str(settings.gateway_port),
        "DM_PORT": str(settings.dm_port),
        "LLM_PORT": str(settings.llm_port),
        # Child logs reach the terminal line by line, not in 8 KiB blocks.
        "PYTHONUNBUFFERED": "1",
    }
    llm_started = any(spec.name == "llm-local" for spec in services)
    return StackPlan(
        services=tuple(services),
        env=env,
        host=host,
        gateway_http=gateway_http,
        gateway_ws=f"ws://{local}:{settings.gateway_port}",
        redis_url=redis_url,
        llm_base_url=llm_base_url,
        dm_url=dm_url,
        embedded_model=llm_started and settings.llm_backend == "embedded",
        model_path=settings.llm_model_path,
        api_keys=tuple(k.strip() for k in settings.gateway_api_keys.split(",") if k.strip()),
        data_dir=data_dir,
        notes=tuple(notes),
    )


def _check_distinct_ports(settings: StackSettings) -> None:
    ports = {
        "GATEWAY_PORT": settings.gateway_port,
        "DM_PORT": settings.dm_port,
        "LLM_PORT": settings.llm_port,
    }
    redis = urlsplit(settings.redis_url)
    if redis.scheme == "redis" and redis.hostname in LOOPBACK_HOSTS:
        ports["REDIS_URL"] = redis.port or DEFAULT_REDIS_PORT
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise PlanError(f"{seen[port]} and {name} are both port {port}: give each its own")
        seen[port] = name


def _redis_argv(binary: str, port: int, data_dir: Path, password: str | None) -> tuple[str, ...]:
    argv = [
        binary,
        "--port",
        str(port),
        # "-::1": IPv6 loopback too when the machine has it ("localhost" may resolve to it).
        "--bind",
        "127.0.0.1",
        "-::1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    if password:
        argv += ["--requirepass", password]
    return tuple(argv)


def safe_url(url: str) -> str:
    """`url` without its password, for the terminal."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
