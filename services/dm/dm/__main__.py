"""`python -m dm`: serve the dialog manager on DM_PORT."""

from dm.api import create_app
from dm.settings import DmSettings
from svckit.logging import configure_logging
from svckit.server import serve


def main() -> None:
    settings = DmSettings()
    configure_logging("dm", settings.log_level)
    serve(create_app(settings), settings.host, settings.dm_port, settings.log_level)


if __name__ == "__main__":
    main()
