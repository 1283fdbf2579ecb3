from crm_common.migrations import run_env
from records_svc.settings import Settings

run_env("RECORDS_SVC_DATABASE_URL", Settings().database_url)
