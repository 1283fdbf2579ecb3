"""While one account sends bad requests, big uploads and poisoned imports, another account's calls all succeed.

The quiet account's latency under the noise is measured by bench/gateway/bench_noisy_neighbour.py (bench/
README "Gateway"); this test asserts success only.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from corral_devtools.neighbours import Calls, Noise, import_request, noisy_neighbour, quiet_account

pytestmark = pytest.mark.xdist_group("e2e-api")


async def test_a_noisy_account_never_fails_a_quiet_one(suite, token) -> None:  # type: ignore[no-untyped-def]
    noisy_token = suite.create_token("e2e-noisy", "--rate-limit", "0")
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=suite.gateway_url, headers={"Authorization": f"Bearer {noisy_token}"},
                                 timeout=300, limits=limits) as noisy, \
            httpx.AsyncClient(base_url=suite.gateway_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=120, limits=limits) as quiet:
        stop = asyncio.Event()
        noise = Noise()
        calls = Calls()
        neighbour = asyncio.create_task(noisy_neighbour(noisy, stop, noise))
        try:
            await asyncio.sleep(2)  # the noise is under way
            started = await quiet.post("/crm/v3/imports", data={"importRequest": import_request("quiet.csv")},
                                       files={"files": ("quiet.csv", b"Email,First\nquiet-import@quiet.example,Q\n",
                                                        "text/csv")})
            assert started.status_code == 200, started.text
            await quiet_account(quiet, rounds=12, calls=calls)
        finally:
            stop.set()
            await neighbour
            # Its imports of 20,000 bad rows would go on slowing the tests after this one.
            for started_import in orjson.loads((await noisy.get("/crm/v3/imports")).content)["results"]:
                await noisy.post(f"/crm/v3/imports/{started_import['id']}/cancel")
        assert not calls.failures, calls.failures
        assert sum(len(v) for v in calls.latencies.values()) >= 12 * 7
        assert not noise.server_errors, noise.server_errors
        assert sum(n for kind, n in noise.sent.items() if kind.startswith("bad request")) > 20, noise.sent
        assert any(kind.startswith("poisoned import") for kind in noise.sent), noise.sent
        deadline = time.monotonic() + 240
        while True:
            state = orjson.loads((await quiet.get(f"/crm/v3/imports/{started.json()['id']}")).content)["state"]
            if state in ("DONE", "FAILED", "CANCELED") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert state == "DONE"
