from corral_gateway.settings import GatewaySettings
from crm_common.migrations import run_env

run_env("GATEWAY_DATABASE_URL", GatewaySettings().database_url)
