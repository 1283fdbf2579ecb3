"""Settings, read from SF_EMULATOR_* environment variables with working local defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class EmulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SF_EMULATOR_", extra="ignore")

    host: str = "127.0.0.1"
    http_port: int = 8090
    https_port: int = 8443
    cert_dir: Path = Path(".run")
    client_id: str = "corral-emulator"
    client_secret: str = "corral-emulator-secret"
    app_name: str = "Corral"
    # Salesforce has no expires_in; sessions end after the org's timeout (2 h by default).
    token_ttl_seconds: int = 7200
    enable_admin: bool = False
    page_size: int = 2000
    daily_api_requests: int = 100_000
    per_app_api_requests: int = 0  # 0 = no per-app cap reported
    api_version: str = "60.0"
    # PEM certificate or public key that verifies JWT bearer assertions (RS256); optional.
    jwt_public_key_path: Path | None = None
    org_id: str = "00D5g000004SfEmAAK"
    log_level: str = "warning"
