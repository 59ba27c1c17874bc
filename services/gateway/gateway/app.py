"""The gateway app: WebSocket and REST at the edge, one shared HTTP client to dm.

`/healthz` is open to all. `/readyz` and `/metrics` tell the world how the gateway and
dm are doing: with keys configured, they need one, unless the client connects from one
of GATEWAY_OPS_NETWORKS (loopback by default: a container's own healthcheck, `make run`,
a scraper on the same host).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import aiohttp
import orjson
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from gateway.auth import Authenticator
from gateway.deps import Deps, GatewayDeps
from gateway.dm_client import DmClient
from gateway.limits import RateLimits, TokenBuckets
from gateway.metrics import GatewayMetrics
from gateway.openapi import answers, install
from gateway.rest import authenticate, router
from gateway.settings import GatewaySettings
from gateway.shedding import InFlightLimit
from gateway.sockets import DetachedTasks, SocketRegistry
from gateway.ws import serve_call_socket
from svckit.errors import (
    BodySizeLimit,
    describe_validation_error,
    error_response,
    install_error_handlers,
)
from svckit.metrics import metrics_response
from svckit.wire import MAX_BODY_BYTES

READY_TIMEOUT_S = 1.0
SHUTDOWN_DRAIN_S = 5.0


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=2.0),
            connector=aiohttp.TCPConnector(
                limit=settings.gateway_dm_max_connections, keepalive_timeout=30
            ),
        )
        deps = GatewayDeps(
            settings=settings,
            dm=DmClient(http, settings.dm_url, settings.gateway_dm_timeout_s, settings.dm_api_key),
            auth=Authenticator(settings.api_keys),
            limits=RateLimits(
                TokenBuckets(settings.gateway_key_rate, settings.gateway_key_burst),
                TokenBuckets(settings.gateway_call_rate, settings.gateway_call_burst),
            ),
            metrics=metrics,
            sockets=SocketRegistry(settings.gateway_max_sockets_per_key),
            detached=DetachedTasks(),
        )
        app.state.deps = deps
        try:
            yield
        finally:
            await deps.detached.drain(SHUTDOWN_DRAIN_S)
            await http.close()

    app = FastAPI(title="gateway", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        status, code, message = describe_validation_error(exc)
        metrics.errors.labels(code).inc()
        return error_response(status, code, message)

    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    # Outermost: a shed request is answered before anything else runs.
    app.add_middleware(
        InFlightLimit,
        max_in_flight=settings.gateway_max_in_flight,
        in_flight=metrics.in_flight,
        errors=metrics.errors,
    )
    install(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses=answers(200, "Readiness", 401, 503))
    async def readyz(_access: OpsAccess, deps: Deps) -> Response:
        dm_ok = await deps.dm.healthy(READY_TIMEOUT_S)
        body = {
            "status": "ready" if dm_ok else "not_ready",
            "checks": {"dm": "ok" if dm_ok else "unreachable"},
        }
        return Response(
            orjson.dumps(body), status_code=200 if dm_ok else 503, media_type="application/json"
        )

    @app.get(
        "/metrics",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def get_metrics(_access: OpsAccess) -> Response:
        return metrics_response(metrics.registry)

    app.include_router(router)

    @app.websocket("/v1/calls/{call_id}/ws")
    async def call_socket(websocket: WebSocket, call_id: str, deps: Deps) -> None:
        await serve_call_socket(websocket, call_id, deps)

    return app


async def ops_access(request: Request, deps: Deps) -> None:
    """With keys configured, a key is needed unless the client is in GATEWAY_OPS_NETWORKS."""
    client = request.client.host if request.client is not None else ""
    if deps.auth.enabled and not _in_networks(client, deps.settings.ops_networks):
        authenticate(request, deps)


OpsAccess = Annotated[None, Depends(ops_access)]


def _in_networks(
    host: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)
