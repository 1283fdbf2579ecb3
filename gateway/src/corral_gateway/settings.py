"""Gateway settings: only from the environment (`GATEWAY_*`), with working local defaults."""

from __future__ import annotations

from pathlib import Path

from crm_common.settings import DEFAULT_PG_URL, BaseServiceSettings
from pydantic_settings import SettingsConfigDict

# gateway/: where alembic.ini and migrations/ live (members are editable installs at their paths).
GATEWAY_DIR = Path(__file__).resolve().parents[2]


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: str = "gateway"
    port: int = 8080
    database_url: str = f"{DEFAULT_PG_URL}/corral_gateway"
    db_pool_size: int = 5

    # Prometheus figures are served on this port (same host), never on the public one (0 turns them off).
    metrics_port: int = 9080

    records_url: str = "http://127.0.0.1:8101"
    imports_url: str = "http://127.0.0.1:8102"
    merges_url: str = "http://127.0.0.1:8103"
    sync_url: str = "http://127.0.0.1:8104"

    # HubSpot's private-app limits for Professional accounts; a token may carry its own (0 = unlimited).
    rate_limit_per_10s: int = 190
    daily_limit: int = 1_000_000
    # Limits held across every replica through the gateway's Postgres (leased slices); false counts in each
    # replica alone (one replica, or the ingress pinning each token to a replica).
    shared_rate_limits: bool = True

    # Upstream timeouts. Read/write are per chunk, not per request, so a long streamed upload is fine.
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    write_timeout: float = 120.0
    pool_timeout: float = 10.0
    max_connections: int = 200
    # httpcore walks every pooled connection on each request, so the idle pool is kept near the real
    # concurrency rather than at max_connections.
    max_keepalive_connections: int = 32
    # Below the services' keep-alive (75 s): the gateway drops an idle connection before a service would.
    keepalive_expiry: float = 30.0
    # A read or idempotent write that finds its pooled connection closed is sent again on another, this
    # many times; its body is kept for that when it is at most replayable_body_bytes (else it streams).
    stale_connection_retries: int = 2
    replayable_body_bytes: int = 1024 * 1024
    # Upstream bodies up to this size are read whole and sent in one piece; larger or unsized ones stream.
    buffer_response_bytes: int = 256 * 1024
    readyz_timeout: float = 2.0

    token_cache_ttl_seconds: float = 30.0
    last_used_interval_seconds: float = 60.0
    openapi_cache_seconds: float = 30.0

    def backend_urls(self) -> dict[str, str]:
        return {
            "records": self.records_url,
            "imports": self.imports_url,
            "merges": self.merges_url,
            "sync": self.sync_url,
        }
