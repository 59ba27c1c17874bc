"""The settings base every service extends: environment variables, then `.env`."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    log_level: str = "info"
    # Loopback unless told otherwise: a service without keys must not face a network.
    host: str = "127.0.0.1"
