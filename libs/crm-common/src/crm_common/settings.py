"""Settings base: configuration comes only from the environment, with working local defaults."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_EXCHANGE = "corral.events"
# Only for local development; every deployment sets CORRAL_INTERNAL_SECRET from a Secret. A process
# started outside development (CORRAL_ENV) refuses to serve with it: anyone can read it here.
DEFAULT_INTERNAL_SECRET = "corral-dev-internal-secret-change-me"
DEVELOPMENT = "development"


class BaseServiceSettings(BaseSettings):
    """Settings every service shares; subclasses set `env_prefix` and `service_name`."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = 8100
    database_url: str = f"{DEFAULT_PG_URL}/corral"
    db_pool_size: int = 20
    # A ping on every checkout costs a round trip per request; without it a connection broken by a
    # Postgres restart fails one request and is then replaced. Turn on where restarts are frequent.
    db_pool_pre_ping: bool = False
    amqp_url: str = Field(
        default=DEFAULT_AMQP_URL, validation_alias=AliasChoices("CORRAL_AMQP_URL", "amqp_url")
    )
    exchange: str = Field(
        default=DEFAULT_EXCHANGE, validation_alias=AliasChoices("CORRAL_EXCHANGE", "exchange")
    )
    # Tests and private suites set a lifetime so the queues of a run they leave behind disappear by
    # themselves; production queues never expire.
    queue_expires_ms: int | None = Field(
        default=None, validation_alias=AliasChoices("CORRAL_QUEUE_EXPIRES_MS", "queue_expires_ms")
    )
    internal_secret: str = Field(
        default=DEFAULT_INTERNAL_SECRET,
        validation_alias=AliasChoices("CORRAL_INTERNAL_SECRET", "internal_secret"),
    )
    # `development` (make run and the test suites set it) allows the default internal
    # secret; anything else, the default included, requires CORRAL_INTERNAL_SECRET.
    environment: str = Field(default="production", validation_alias=AliasChoices("CORRAL_ENV", "environment"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("CORRAL_LOG_LEVEL", "log_level"))
    log_json: bool = Field(default=True, validation_alias=AliasChoices("CORRAL_LOG_JSON", "log_json"))
    # uvicorn worker processes (uvicorn's and gunicorn's usual variable); in Kubernetes prefer replicas.
    workers: int = Field(default=1, ge=1, validation_alias=AliasChoices("WEB_CONCURRENCY", "workers"))
    # JSON request bodies are read whole before a route parses them; past this size they are refused (413).
    max_json_body_bytes: int = 64 * 1024 * 1024
    # Longer than any client's idle-connection expiry (the gateway's and ServiceClient's 30 s), so a pooled
    # connection is never closed by the server while a client is about to reuse it.
    keep_alive_seconds: int = 75
    run_outbox_relay: bool = True
    run_consumers: bool = True

    def insecure_secret_problem(self) -> str | None:
        """Why this process must not serve with its internal secret, or None."""
        if self.environment == DEVELOPMENT:
            return None
        if self.internal_secret == DEFAULT_INTERNAL_SECRET:
            return ("CORRAL_INTERNAL_SECRET is the development default written in the source; set a secret of "
                    "your own (e.g. `openssl rand -hex 32`), or CORRAL_ENV=development on a development machine")
        if not self.internal_secret:
            return "CORRAL_INTERNAL_SECRET is empty"
        return None

    @property
    def async_database_url(self) -> str:
        return to_async_url(self.database_url)


def to_async_url(url: str) -> str:
    """SQLAlchemy wants the driver in the scheme; operators write plain postgresql:// URLs."""
    if url.startswith("postgresql+asyncpg://"):
        return url
    return url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )


def to_plain_url(url: str) -> str:
    """asyncpg.connect() takes the libpq form without a driver suffix."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
