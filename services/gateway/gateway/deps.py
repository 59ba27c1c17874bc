"""What every gateway handler shares, built once per app in its lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from gateway.auth import Authenticator
from gateway.dm_client import DmClient
from gateway.limits import RateLimits
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.sockets import DetachedTasks, SocketRegistry


@dataclass(frozen=True, slots=True)
class GatewayDeps:
    settings: GatewaySettings
    dm: DmClient
    auth: Authenticator
    limits: RateLimits
    metrics: GatewayMetrics
    sockets: SocketRegistry
    detached: DetachedTasks


async def get_deps(connection: HTTPConnection) -> GatewayDeps:
    deps: GatewayDeps = connection.app.state.deps
    return deps


Deps = Annotated[GatewayDeps, Depends(get_deps)]
