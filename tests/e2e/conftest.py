"""Boots the real suite (gateway, four services, Salesforce emulator) on free ports for end-to-end tests.

The modules form two xdist groups ("e2e-api": the public API through the SDK and the fuzzers; "e2e": imports,
kills, sync, metrics, the CLI and the README), so the two pytest workers each boot one suite and share the work.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from corral_devtools.suite import Suite


@pytest.fixture(scope="session")
def suite() -> Iterator[object]:
    running = Suite.on_free_ports(extra_env={"CORRAL_LOG_LEVEL": "WARNING"})
    running.migrate()
    running.start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
        running.drop_databases()


@pytest.fixture(scope="session")
def token(suite: object) -> str:
    return suite.create_token("e2e-main", "--rate-limit", "0")  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def other_token(suite: object) -> str:
    return suite.create_token("e2e-other", "--rate-limit", "0")  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def hubspot(suite: object, token: str):  # type: ignore[no-untyped-def]
    from hubspot import HubSpot

    return HubSpot(access_token=token, host=suite.gateway_url)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def hubspot_other(suite: object, other_token: str):  # type: ignore[no-untyped-def]
    from hubspot import HubSpot

    return HubSpot(access_token=other_token, host=suite.gateway_url)  # type: ignore[attr-defined]
