from crm_common.migrations import run_env
from import_svc.settings import Settings

run_env("IMPORT_SVC_DATABASE_URL", Settings().database_url)
