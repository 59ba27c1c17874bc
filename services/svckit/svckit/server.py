"""Run an ASGI app under uvicorn the same way for every service."""

from __future__ import annotations

import gc

import uvicorn
from starlette.types import ASGIApp


def serve(
    app: ASGIApp,
    host: str,
    port: int,
    log_level: str = "info",
    *,
    ws_max_size: int = 16 * 1024 * 1024,
) -> None:
    # What start-up built (modules, the app, flows, schemas, models) lives as long as the
    # process: frozen out of the collector's sight, a full collection walks only what
    # requests create. Measured in dm at 200 paced calls: full-collection pauses of
    # ~85 ms fell to ~9-11 ms, and turn p99 with them.
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # logging is configured by svckit.logging
        access_log=False,  # one canonical line per turn instead of one per request
        ws_per_message_deflate=False,  # small JSON frames: compression costs more than it saves
        ws_max_size=ws_max_size,
        timeout_graceful_shutdown=5,
    )
