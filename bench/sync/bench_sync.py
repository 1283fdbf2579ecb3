"""Salesforce sync benchmark: API calls and time for 10,000 changes each way, and change-to-Salesforce latency.

    uv run python bench/sync/bench_sync.py [--records 10000] [--edits 40] [--seed 7]

Boots one private copy of the suite with the Salesforce emulator (admin API on) and measures, in that one run:

1. outbound: `--records` contacts created in Corral (records-svc's bulk route, as an import would) reach
   Salesforce; then all of them changed in Corral reach Salesforce: calls and seconds until the org holds
   every value;
2. inbound: all of them changed in Salesforce by another user (the emulator's admin API) reach Corral with one
   `POST /corral/v1/salesforce/sync/run`: the calls it reports, and the seconds;
3. idle: ten `sync/run` cycles with nothing changed: calls per cycle;
4. latency: `--edits` single-contact edits through the gateway, one every ~0.7 s, each timed from the
   PATCH's answer to the value being readable in Salesforce, with the sync's default flush interval.

The emulator's own per-token counters are the referee for every call count (the benchmark's own reads use a
token of their own and are left out). Baselines measured in the same run: one call per record (what a naive
sync spends), plain sObject Collections without composite packing (200 records per call), and for latency the
time one direct write to the org takes. The worker's inbound poll interval is raised to an hour so that
a scheduled poll cannot fall into the outbound measurements (the latency phase needs only the flush).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from corral_devtools.benchkit import DirectAuth, check, pct
from corral_devtools.suite import Suite

SYNC = "/corral/v1/salesforce"
API = "/services/data/v60.0"


class Org:
    def __init__(self, base: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=300)
        self.token = ""

    async def login(self) -> None:
        body = check(await self.http.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "corral-emulator",
            "client_secret": "corral-emulator-secret"}), 200).json()
        self.token = body["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    async def admin(self, method: str, path: str, **kw: Any) -> Any:
        response = check(await self.http.request(method, f"/__emulator__{path}", **kw), 200, 201, 204)
        return response.json() if response.content else None

    async def count(self, soql: str) -> int:
        return check(await self.http.get(f"{API}/query", params={"q": soql}), 200).json()["totalSize"]

    async def sync_calls(self) -> int:
        usage = await self.admin("GET", "/api-usage")
        return usage["total"] - usage["byToken"].get(self.token, 0)


async def wait_for(check_fn: Any, timeout: float, every: float = 0.25) -> float:
    started = time.monotonic()
    while not await check_fn():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not reached after {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def run(args: argparse.Namespace) -> str:
    suite = Suite.on_free_ports(tag=f"bench_sync_{os.getpid()}", extra_env={
        "CORRAL_LOG_LEVEL": args.log_level, "SYNC_SVC_POLL_INTERVAL_SECONDS": "3600"})
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    suite.migrate()
    suite.start()
    n = args.records
    rng = random.Random(args.seed)
    try:
        suite.wait_ready()
        token, account_id = suite.create_unlimited_token("bench-sync")
        gateway = httpx.AsyncClient(base_url=suite.gateway_url, headers={"authorization": f"Bearer {token}"},
                                    timeout=600)
        direct = httpx.AsyncClient(base_url=suite.url("records-svc"), auth=DirectAuth(account_id), timeout=600)
        org = Org(f"http://127.0.0.1:{suite.emulator_ports[0]}")
        async with gateway, direct, org.http:
            await org.login()
            check(await gateway.put(f"{SYNC}/connection", json={
                "loginUrl": f"http://127.0.0.1:{suite.emulator_ports[0]}", "flow": "client_credentials",
                "clientId": "corral-emulator", "clientSecret": "corral-emulator-secret"}), 200)
            check(await gateway.put(f"{SYNC}/objects/contacts", json={"salesforceObject": "Contact"}), 200)
            mappings = check(await gateway.get(f"{SYNC}/objects/contacts/mappings"), 200).json()["results"]
            title = next(m for m in mappings if m["property"] == "jobtitle")
            check(await gateway.patch(f"{SYNC}/objects/contacts/mappings/{title['id']}",
                                      json={"syncRule": "TWO_WAY"}), 200)
            check(await gateway.post(f"{SYNC}/sync/start"), 200)

            # 1a. creates: n new contacts in Corral reach Salesforce.
            calls0 = await org.sync_calls()
            t0 = time.monotonic()
            rows = [{"ref": i, "properties": {"email": f"b{i}@bench.example", "firstname": f"F{i}",
                                              "lastname": f"L{i}", "jobtitle": "start"}} for i in range(n)]
            created = check(await direct.post("/internal/v1/records/contacts/bulk-upsert", json={
                "operation": "CREATE", "sourceType": "IMPORT", "rows": rows}), 200).json()
            ids = [r["id"] for r in created["results"]]
            await wait_for(lambda: _count_is(org, "SELECT COUNT() FROM Contact", n), 600)
            create_seconds = time.monotonic() - t0
            await wait_for(lambda: _queue_empty(gateway), 600)
            create_calls = await org.sync_calls() - calls0

            # The pushes' echoes come back in the next poll (the org's rows changed): read them now, counted apart.
            calls0 = await org.sync_calls()
            echo = check(await gateway.post(f"{SYNC}/sync/run"), 200).json()
            echo_calls = await org.sync_calls() - calls0

            # 1b. updates: all n changed in Corral reach Salesforce.
            calls0 = await org.sync_calls()
            t0 = time.monotonic()
            check(await direct.post("/internal/v1/records/contacts/bulk-upsert", json={
                "operation": "UPDATE", "idProperty": "hs_object_id", "sourceType": "API",
                "rows": [{"ref": i, "id": record_id, "properties": {"jobtitle": "corral"}}
                         for i, record_id in enumerate(ids)]}), 200)
            await wait_for(lambda: _count_is(org, "SELECT COUNT() FROM Contact WHERE Title = 'corral'", n), 600)
            update_seconds = time.monotonic() - t0
            await wait_for(lambda: _queue_empty(gateway), 600)
            update_calls = await org.sync_calls() - calls0
            check(await gateway.post(f"{SYNC}/sync/run"), 200)  # the echoes, again apart

            # 2. inbound: all n changed in Salesforce by a person.
            sf_ids = [r["Id"] for r in await _all_rows(org, "SELECT Id FROM Contact")]
            rng.shuffle(sf_ids)
            t0 = time.monotonic()
            gate = asyncio.Semaphore(16)

            async def change(salesforce_id: str) -> None:
                async with gate:
                    await org.admin("PATCH", f"/records/Contact/{salesforce_id}", json={"fields": {"Title": "sf"}})

            await asyncio.gather(*(change(i) for i in sf_ids))
            made_in_salesforce = time.monotonic() - t0
            calls0 = await org.sync_calls()
            t0 = time.monotonic()
            inbound = check(await gateway.post(f"{SYNC}/sync/run"), 200).json()
            inbound_seconds = time.monotonic() - t0
            inbound_calls = await org.sync_calls() - calls0
            in_corral = check(await gateway.post("/crm/v3/objects/contacts/search", json={
                "filterGroups": [{"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "sf"}]}],
                "limit": 1}), 200).json()["total"]

            # 3. idle cycles.
            idle = [check(await gateway.post(f"{SYNC}/sync/run"), 200).json()["apiCalls"] for _ in range(10)]

            # 4. latency with the default flush interval.
            latencies: list[float] = []
            for k in range(args.edits):
                record_id = rng.choice(ids)
                value = f"edit {k}"
                check(await gateway.patch(f"/crm/v3/objects/contacts/{record_id}",
                                          json={"properties": {"jobtitle": value}}), 200)
                latencies.append(await wait_for(
                    lambda v=value: _count_is(org, f"SELECT COUNT() FROM Contact WHERE Title = '{v}'", 1), 60,
                    every=0.05))
                await asyncio.sleep(0.7)

            # Baselines in the same run: plain collections (no composite) and one direct write per edit.
            some = sf_ids[:1000]
            calls0 = await org.sync_calls()
            t0 = time.monotonic()
            for start in range(0, len(some), 200):
                check(await org.http.patch(f"{API}/composite/sobjects", json={"allOrNone": False, "records": [
                    {"attributes": {"type": "Contact"}, "Id": i, "Title": "plain"} for i in some[start:start + 200]]}),
                    200)
            plain_per_1000 = (time.monotonic() - t0) * 1000 / len(some)
            direct_writes = []
            for i in some[:20]:
                w0 = time.monotonic()
                check(await org.http.patch(f"{API}/sobjects/Contact/{i}", json={"Title": "direct"}), 204)
                direct_writes.append(time.monotonic() - w0)
    finally:
        suite.stop()
        await asyncio.to_thread(suite.drop_databases)
    load_after = os.getloadavg()
    naive = n
    plain_collections = -(-n // 200)
    plain_seconds = plain_per_1000 * n / 1000
    p50, p95 = pct(latencies, 50), pct(latencies, 95)
    direct_p50 = pct(direct_writes, 50)
    lines = [
        f"Salesforce sync benchmark, {started:%Y-%m-%d %H:%M} UTC: nproc {os.cpu_count()}, Python "
        f"{sys.version.split()[0]}; {n:,} contacts, seed {args.seed}; load average (1/5/15 min) "
        f"{'/'.join(f'{v:.1f}' for v in load_before)} at the start, {'/'.join(f'{v:.1f}' for v in load_after)} "
        "at the end (the machine is shared: compare ratios, not absolute figures)",
        "",
        "| what | API calls | vs one per record | vs plain collections | seconds | vs plain collections' time |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {n:,} contacts created in Corral reach Salesforce | {create_calls} | {create_calls / naive:.4f} | "
        f"{create_calls / plain_collections:.2f} | {create_seconds:.1f} | {create_seconds / plain_seconds:.1f}x |",
        f"| {n:,} contacts changed in Corral reach Salesforce | {update_calls} | {update_calls / naive:.4f} | "
        f"{update_calls / plain_collections:.2f} | {update_seconds:.1f} | {update_seconds / plain_seconds:.1f}x |",
        f"| their echoes read back by the next poll (nothing written) | {echo_calls} | | | | |",
        f"| {n:,} contacts changed in Salesforce reach Corral (one sync/run) | {inbound_calls} "
        f"(sync/run says {inbound['apiCalls']}) | {inbound_calls / naive:.4f} | | {inbound_seconds:.1f} | |",
        f"| idle cycle (max of 10) | {max(idle)} | | | | |",
        "",
        f"Inbound: {in_corral:,} contacts hold Salesforce's value in Corral; the {n:,} changes took "
        f"{made_in_salesforce:.1f} s to make through the admin API. Inbound counts: {inbound['inbound']}. "
        f"Echo cycle: {echo['inbound']}.",
        "",
        f"Change-to-Salesforce latency over {len(latencies)} edits (default flush interval): p50 {p50:.2f} s, "
        f"p95 {p95:.2f} s, max {max(latencies):.2f} s; one direct write to the org p50 {direct_p50 * 1000:.0f} ms "
        f"(latency p50 / direct write p50 = {p50 / direct_p50:.0f}x). Plain collections: "
        f"{plain_per_1000:.2f} s per 1,000 updates.",
    ]
    return "\n".join(lines)


async def _count_is(org: Org, soql: str, wanted: int) -> bool:
    return await org.count(soql) >= wanted


async def _queue_empty(gateway: httpx.AsyncClient) -> bool:
    status = check(await gateway.get(f"{SYNC}/sync/status"), 200).json()
    return status["queuedChanges"] == 0


async def _all_rows(org: Org, soql: str) -> list[dict[str, Any]]:
    page = check(await org.http.get(f"{API}/query", params={"q": soql}), 200).json()
    rows = list(page["records"])
    while not page["done"]:
        page = check(await org.http.get(page["nextRecordsUrl"]), 200).json()
        rows.extend(page["records"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="WARNING", help="INFO shows each flush's seconds per phase in "
                                                               "sync-svc's log (.run/logs/bench_sync_<pid>/)")
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
