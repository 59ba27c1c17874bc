"""`python -m dm`: serve the dialog manager on DM_PORT."""

import sys

import structlog

from dm.api import create_app
from dm.settings import DmSettings
from svckit.logging import configure_logging
from svckit.server import serve
from svckit.settings import is_loopback

log = structlog.get_logger(__name__)


def main() -> None:
    settings = DmSettings()
    configure_logging("dm", settings.log_level, secrets=[settings.dm_api_key, settings.llm_api_key])
    if not settings.dm_api_key and not is_loopback(settings.host):
        # Without a key anyone who reaches the port could read and drive every call.
        log.error("refusing_open_bind", host=settings.host, hint="set DM_API_KEY or HOST=127.0.0.1")
        sys.exit(2)
    serve(create_app(settings), settings.host, settings.dm_port, settings.log_level)


if __name__ == "__main__":
    main()
