from pathlib import Path

from crm_common.settings import DEFAULT_PG_URL, BaseServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SYNC_SVC_", extra="ignore", populate_by_name=True)

    service_name: str = "sync-svc"
    port: int = 8104
    database_url: str = f"{DEFAULT_PG_URL}/corral_sync"
    records_url: str = "http://127.0.0.1:8101"

    # Fernet keys for secrets at rest (client secrets, private keys, tokens): one key, or several separated by
    # commas (the first encrypts, all decrypt). `encryption_key_file` is read when the variable is empty
    # (`make run` writes one under .run/). Without either, connecting is refused with a 503 saying why.
    encryption_key: str = ""
    encryption_key_file: Path | None = None

    # The Salesforce API version used when the org offers it (otherwise the org's newest).
    salesforce_api_version: str = "60.0"
    salesforce_timeout_seconds: float = 120.0
    salesforce_retry_attempts: int = 4
    salesforce_retry_base_delay: float = 0.5
    # Calls one sync cycle keeps in flight against one org (composite calls of up to 1,000 rows each).
    salesforce_concurrent_calls: int = 4
    # The connected app HubSpot-style connections use for the authorization-code flow when the account has not
    # saved its own (PUT connection with flow authorization_code).
    oauth_client_id: str = ""
    oauth_client_secret: str = ""
    oauth_login_url: str = "https://login.salesforce.com"
    oauth_state_ttl_seconds: int = 900

    # The engine. Outbound: changes wait at most `flush_interval_seconds` (plus one call) before they are
    # written, which keeps change-to-Salesforce latency well under 10 s; a flush takes at most
    # `flush_batch_size` records per object. Inbound: each enabled object is read every
    # `poll_interval_seconds` (one call per idle poll for all objects together: 1,440 calls a day at 60 s),
    # re-reading `poll_overlap_seconds` before the watermark for late commits.
    run_worker: bool = True
    worker_tick_seconds: float = 0.5
    # Accounts one replica's worker runs cycles for at the same time.
    worker_concurrency: int = 4
    flush_interval_seconds: float = 2.0
    flush_batch_size: int = 10_000
    poll_interval_seconds: float = 60.0
    poll_overlap_seconds: float = 120.0
    # Failed records are tried again after this long, doubling up to the maximum.
    error_retry_seconds: float = 60.0
    error_retry_max_seconds: float = 1800.0
    # How long an account stays paused after Salesforce's own REQUEST_LIMIT_EXCEEDED before the next try.
    limit_pause_seconds: float = 900.0
