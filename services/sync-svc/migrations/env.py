from crm_common.migrations import run_env
from sync_svc.settings import Settings

run_env("SYNC_SVC_DATABASE_URL", Settings().database_url)
