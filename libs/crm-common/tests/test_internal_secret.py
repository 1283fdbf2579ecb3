"""A service started outside development refuses the internal secret written in the source: anyone who can
read the repository could otherwise sign an auth context for any account."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crm_common.settings import DEFAULT_INTERNAL_SECRET, BaseServiceSettings

BIN = Path(sys.executable).parent


def test_only_development_may_use_the_default_secret() -> None:
    assert BaseServiceSettings(environment="development").insecure_secret_problem() is None
    production = BaseServiceSettings(environment="production")
    assert production.internal_secret == DEFAULT_INTERNAL_SECRET
    assert "CORRAL_INTERNAL_SECRET" in (production.insecure_secret_problem() or "")
    assert BaseServiceSettings(environment="production", internal_secret="").insecure_secret_problem()
    assert BaseServiceSettings(environment="production", internal_secret="s3cr3t-" * 5).insecure_secret_problem() is None


def test_a_service_started_without_settings_exits_at_once_with_the_default_secret() -> None:
    """Every service and the gateway start through crm_common.cli.serve; one of them stands for all."""
    env = {k: v for k, v in os.environ.items() if k not in ("CORRAL_ENV", "CORRAL_INTERNAL_SECRET")}
    done = subprocess.run([str(BIN / "records-svc")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "refuses to start" in done.stderr and "CORRAL_INTERNAL_SECRET" in done.stderr
