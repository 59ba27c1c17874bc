"""Find a port the stack needs that something else holds, and say what to do about it."""

from __future__ import annotations

import errno
import socket

from voicectl.plan import ServiceSpec, StackPlan

ALTERNATIVES_TRIED = 50


def bind_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port now, or None if it could."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn and Redis do: a port left in TIME_WAIT is free, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "already in use"
            return exc.strerror or str(exc)
    return None


def bind_host(spec: ServiceSpec, plan: StackPlan) -> str:
    return "127.0.0.1" if spec.name == "redis" else plan.host


def port_problems(plan: StackPlan) -> list[str]:
    """One message per port that is taken, naming the service, the port and the fix."""
    taken = {spec.port for spec in plan.services}
    messages = []
    for spec in plan.services:
        host = bind_host(spec, plan)
        problem = bind_problem(host, spec.port)
        if problem is not None:
            messages.append(_message(spec, host, problem, _alternative(host, spec.port, taken)))
    return messages


def _alternative(host: str, port: int, taken: set[int]) -> int | None:
    for candidate in range(port + 1, min(port + ALTERNATIVES_TRIED, 65535) + 1):
        if candidate not in taken and bind_problem(host, candidate) is None:
            return candidate
    return None


def _message(spec: ServiceSpec, host: str, problem: str, alternative: int | None) -> str:
    if spec.name == "redis":
        lines = [
            f"port {spec.port} for Redis (from REDIS_URL={spec.url}) is {problem} on {host}:"
            " is a Redis server already running there?",
        ]
        fix = f"REDIS_URL=redis://localhost:{alternative}/0" if alternative else None
    else:
        lines = [
            f"port {spec.port} for {spec.name} ({spec.setting}) is {problem} on {host}:"
            " another `make run`, or another program, holds it.",
        ]
        fix = f"{spec.setting}={alternative}" if alternative else None
    lines.append(f"  See what holds it:  ss -ltnp 'sport = :{spec.port}'")
    if fix:
        lines.append(f"  Stop that, or run this stack on another port:  {fix} make run")
    else:
        lines.append(f"  Stop that, or set {spec.setting} to a free port.")
    return "\n".join(lines)
