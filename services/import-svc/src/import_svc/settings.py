from typing import Literal

from crm_common.settings import DEFAULT_PG_URL, BaseServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IMPORT_SVC_", extra="ignore", populate_by_name=True)

    service_name: str = "import-svc"
    port: int = 8102
    database_url: str = f"{DEFAULT_PG_URL}/corral_imports"
    records_url: str = "http://127.0.0.1:8101"
    # Captured contacts without an email are matched by merge-svc's duplicate check.
    merge_url: str = "http://127.0.0.1:8103"
    records_timeout: float = 300.0
    records_retries: int = 5
    # A large bulk write is split by key into this many calls that run at once: while Postgres writes
    # one part, records-svc validates the other (rows with one key always travel in the same part).
    records_parallel_calls: int = 2
    file_store_dir: str = ".run/import-files"

    # Business-card OCR: cards read at once per replica (tesseract uses one core per card, so more only
    # queue for CPU), the time one card may take, and tesseract's languages ("eng+deu" needs Debian's
    # tesseract-ocr-deu installed).
    ocr_at_once: int = 2
    ocr_timeout_seconds: float = 30.0
    ocr_languages: str = "eng"

    # The worker: rows per bulk call to records-svc, jobs run at once by one replica, how often an
    # idle worker looks for work, and how long a claimed job stays owned without a checkpoint.
    run_worker: bool = True
    worker_batch_size: int = 10_000
    worker_concurrency: int = 2
    worker_poll_interval: float = 1.0
    worker_lease_seconds: float = 120.0
    worker_retry_seconds: float = 15.0
    max_processing_per_account: int = 3
    # A batch records-svc keeps failing on (500, not an outage) fails the import after this many attempts.
    worker_max_failed_attempts: int = 5
    # Fault injection for the crash tests: the worker dies at this stage of this batch (1-based): before
    # its records calls, after them (before the checkpoint) or after its checkpoint; the whole process
    # with SIGKILL when worker_crash_kills_process is set. Never set in a deployment.
    worker_crash_after_batches: int | None = None
    worker_crash_stage: Literal["before_call", "after_call", "after_checkpoint"] = "after_call"
    worker_crash_kills_process: bool = False

    # Uploaded files are deleted this many days after their import ended (DONE, FAILED, CANCELED, REVERTED);
    # its status, counters and errors stay. Every replica's worker looks for such files this often.
    file_retention_days: float = 30.0
    file_sweep_interval: float = 3600.0
