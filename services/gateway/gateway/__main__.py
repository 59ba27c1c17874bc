"""`python -m gateway`: serve the gateway on GATEWAY_PORT."""

from pydantic import ValidationError

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.ws import MAX_FRAME_BYTES
from svckit.logging import configure_logging
from svckit.server import serve


def main() -> None:
    try:
        settings = GatewaySettings()
    except ValidationError as exc:
        raise SystemExit(f"gateway: bad settings: {exc}") from None
    configure_logging(
        "gateway", settings.log_level, secrets=[*settings.api_keys, settings.dm_api_key]
    )
    serve(
        create_app(settings),
        settings.host,
        settings.gateway_port,
        settings.log_level,
        ws_max_size=MAX_FRAME_BYTES,
        limits=settings.edge_limits,
    )


if __name__ == "__main__":
    main()
