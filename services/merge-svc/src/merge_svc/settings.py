from crm_common.settings import DEFAULT_PG_URL, BaseServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MERGE_SVC_", extra="ignore", populate_by_name=True)

    service_name: str = "merge-svc"
    port: int = 8103
    database_url: str = f"{DEFAULT_PG_URL}/corral_merges"
    records_url: str = "http://127.0.0.1:8101"
    records_retries: int = 3
    sync_url: str = "http://127.0.0.1:8104"
    # Merges left PENDING (merge-svc stopped mid-merge) are settled from records-svc's journal once they are
    # older than the grace period, which must exceed the records-svc call timeout (60 s).
    reconcile_interval_seconds: float = 60.0
    reconcile_grace_seconds: float = 300.0
    # Duplicate scans run in this process, one at a time; replicas share the job queue.
    run_scans: bool = True
    scan_poll_seconds: float = 5.0
