from crm_common.migrations import run_env
from merge_svc.settings import Settings

run_env("MERGE_SVC_DATABASE_URL", Settings().database_url)
