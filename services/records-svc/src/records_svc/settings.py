from crm_common.settings import DEFAULT_PG_URL, BaseServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECORDS_SVC_", extra="ignore", populate_by_name=True)

    service_name: str = "records-svc"
    port: int = 8101
    database_url: str = f"{DEFAULT_PG_URL}/corral_records"
    # A keyed bulk write's answer is kept this long: a call sent again with the same key within it gets
    # that answer back instead of writing again (a retry, an import resumed after a crash).
    batch_answer_retention_hours: float = 72.0
