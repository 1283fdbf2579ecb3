"""Merge benchmark: merging two contacts with 1,000 associations each, against a single-record update.

    uv run python bench/merges/bench_merge.py [--pairs 30] [--fan 1000] [--plain-pairs 30] [--seed 42]

Boots one private copy of the suite (gateway + services on free ports, throwaway databases dropped at
the end) and measures, in that one run, through the gateway, one request at a time:

1. `POST /crm/v3/objects/contacts/merge` of `--pairs` pairs of contacts, each contact associated with
   `--fan` companies (the merged record ends up with 2 x fan associations; companies are shuffled by seed
   and reused across pairs in blocks of `--fan`, never shared within a pair): p50/p99 and merges per second
   (sequential: count / wall time of the merges alone);
2. the same for `--plain-pairs` pairs without associations, to show what the associations cost;
3. baseline: `PATCH /crm/v3/objects/contacts/{id}` of one property of another contact, one update
   interleaved before each merge of (1) and (2), same run.

Records and associations are seeded through records-svc's internal bulk routes (signed as the gateway
would, for the account behind the gateway token). Nothing here asserts a timing; the load generator
shares the machine with the suite and Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from corral_devtools.benchkit import check, pct
from corral_devtools.suite import Suite

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent






class Signed(httpx.Auth):
    """Signs as the gateway would, re-signing before the context's 5-minute validity runs out."""

    def __init__(self, account_id: int) -> None:
        from crm_common.testing import signed_headers

        self._sign = lambda: signed_headers(account_id)
        self._headers, self._at = self._sign(), time.monotonic()

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        if time.monotonic() - self._at > 60:
            self._headers, self._at = self._sign(), time.monotonic()
        request.headers.update(self._headers)
        yield request


async def seed_records(direct: httpx.AsyncClient, object_type: str, rows: list[dict[str, str]]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(rows), 20_000):
        part = rows[start:start + 20_000]
        response = check(await direct.post(f"/internal/v1/records/{object_type}/bulk-upsert", json={
            "operation": "CREATE", "sourceType": "IMPORT",
            "rows": [{"ref": start + i, "properties": p} for i, p in enumerate(part)]}), 200)
        for r in response.json()["results"]:
            if r["status"] != "CREATED":
                raise RuntimeError(f"seeding {object_type}: {r}")
            ids.append(r["id"])
    return ids


async def seed_associations(direct: httpx.AsyncClient, pairs: list[tuple[str, str]], *, chunk: int = 1000,
                            parallel: int = 2) -> None:
    """Small calls: the internal route takes a savepoint per input, and thousands of subtransactions in one
    transaction make PostgreSQL slow down sharply."""
    gate = asyncio.Semaphore(parallel)

    async def one(start: int) -> None:
        inputs = [{"fromObjectType": "0-1", "fromId": c, "toObjectType": "0-2", "toId": k}
                  for c, k in pairs[start:start + chunk]]
        async with gate:
            response = check(await direct.post("/internal/v1/associations/bulk", json={"inputs": inputs}), 200)
        bad = [r for r in response.json()["results"] if r["status"] == "ERROR"]
        if bad:
            raise RuntimeError(f"associating: {bad[:3]}")

    await asyncio.gather(*(one(s) for s in range(0, len(pairs), chunk)))


async def run(args: argparse.Namespace) -> str:
    suite = Suite.on_free_ports(tag=f"bench_merge_{os.getpid()}",
                                             extra_env={"CORRAL_LOG_LEVEL": "WARNING"})
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    suite.migrate()
    suite.start(with_emulator=False)
    try:
        suite.wait_ready()
        token, account_id = suite.create_unlimited_token("bench-merge")
        rng = random.Random(args.seed)
        gateway = httpx.AsyncClient(base_url=suite.gateway_url, headers={"authorization": f"Bearer {token}"},
                                    timeout=300)
        direct = httpx.AsyncClient(base_url=suite.url("records-svc"), auth=Signed(account_id), timeout=600)
        async with gateway, direct:
            fan = args.fan
            heavy = args.pairs * 2 + args.pairs  # two per pair plus one update target per merge
            linked = args.pairs * 2
            # Companies are shared between pairs (one bulk call of at most 20,000 seeds them all).
            blocks = max(2, min(linked, 20_000 // fan))
            t0 = time.monotonic()
            contacts = await seed_records(direct, "contacts", [
                {"email": f"m{i}@bench.example", "firstname": f"F{i}", "lastname": f"L{i}",
                 "lifecyclestage": rng.choice(["lead", "customer", "subscriber"]),
                 "num_conversion_events": str(rng.randint(0, 9))}
                for i in range(heavy + args.plain_pairs * 2 + args.plain_pairs)])
            companies = await seed_records(direct, "companies", [
                {"name": f"Co {i}", "domain": f"co{i}.bench.example"} for i in range(blocks * fan)])
            rng.shuffle(companies)
            # Contact i gets company block i % blocks: the two contacts of a pair never share a company.
            links = [(contacts[i], companies[(i % blocks) * fan + j]) for i in range(linked) for j in range(fan)]
            await seed_associations(direct, links)
            seeded = time.monotonic() - t0

            heavy_pairs = [(contacts[2 * i], contacts[2 * i + 1]) for i in range(args.pairs)]
            heavy_updates = contacts[2 * args.pairs:heavy]
            base = heavy
            plain_pairs = [(contacts[base + 2 * i], contacts[base + 2 * i + 1]) for i in range(args.plain_pairs)]
            plain_updates = contacts[base + 2 * args.plain_pairs:]

            # Warm up connections and caches on both paths (one update, one plain merge not counted).
            check(await gateway.patch(f"/crm/v3/objects/contacts/{plain_updates[0]}",
                                      json={"properties": {"jobtitle": "warm"}}), 200)

            async def measure(pairs: list[tuple[str, str]], updates: list[str]) -> tuple[list[float], list[float],
                                                                                         float]:
                merge_times: list[float] = []
                update_times: list[float] = []
                for n, ((primary, secondary), target) in enumerate(zip(pairs, updates, strict=True)):
                    u0 = time.perf_counter()
                    check(await gateway.patch(f"/crm/v3/objects/contacts/{target}",
                                              json={"properties": {"jobtitle": f"T{n}"}}), 200)
                    update_times.append(time.perf_counter() - u0)
                    m0 = time.perf_counter()
                    response = check(await gateway.post("/crm/v3/objects/contacts/merge", json={
                        "primaryObjectId": primary, "objectIdToMerge": secondary}), 200)
                    merge_times.append(time.perf_counter() - m0)
                    assert response.json()["id"] not in (primary, secondary)
                return merge_times, update_times, sum(merge_times)

            heavy_merges, heavy_updates_t, heavy_total = await measure(heavy_pairs, heavy_updates)
            plain_merges, plain_updates_t, plain_total = await measure(plain_pairs, plain_updates)

            # Check one result really carries both records' associations.
            last = check(await gateway.post("/crm/v3/objects/contacts/search", json={
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ",
                                               "value": f"m{2 * (args.pairs - 1)}@bench.example"}]}]}), 200)
            merged_id = last.json()["results"][0]["id"]
            assoc = check(await gateway.get(f"/crm/v4/objects/contacts/{merged_id}/associations/companies",
                                            params={"limit": 500}), 200).json()
            pages = 1
            count = len(assoc["results"])
            while assoc.get("paging", {}).get("next"):
                assoc = check(await gateway.get(f"/crm/v4/objects/contacts/{merged_id}/associations/companies",
                                                params={"limit": 500,
                                                        "after": assoc["paging"]["next"]["after"]}), 200).json()
                count += len(assoc["results"])
                pages += 1
    finally:
        suite.stop()
        await asyncio.to_thread(suite.drop_databases)
    load_after = os.getloadavg()
    updates = heavy_updates_t + plain_updates_t

    def row(label: str, times: list[float], total: float | None, baseline: float) -> str:
        p50, p99 = pct(times, 50) * 1000, pct(times, 99) * 1000
        rate = f"{len(times) / total:.1f}" if total else f"{len(times) / sum(times):.1f}"
        return f"| {label} | {len(times)} | {p50:.1f} | {p99:.1f} | {rate} | {p50 / baseline:.1f}x |"

    base_p50 = pct(updates, 50) * 1000
    lines = [
        f"Merge benchmark, {started:%Y-%m-%d %H:%M} UTC: nproc {os.cpu_count()}, Python {sys.version.split()[0]}; "
        f"seed {args.seed}; seeding {seeded:.0f} s ({len(links):,} associations); load average (1/5/15 min) "
        f"{'/'.join(f'{v:.1f}' for v in load_before)} at the start, "
        f"{'/'.join(f'{v:.1f}' for v in load_after)} at the end",
        "",
        "Through the gateway, one request at a time, one update interleaved before each merge.",
        "",
        "| operation | n | p50 ms | p99 ms | per second (sequential) | p50 / update p50 |",
        "|---|---:|---:|---:|---:|---:|",
        row("PATCH one contact property (baseline)", updates, None, base_p50),
        row(f"merge two contacts with {args.fan:,} associations each", heavy_merges, heavy_total, base_p50),
        row("merge two contacts without associations", plain_merges, plain_total, base_p50),
        "",
        f"Check: the last merged contact lists {count:,} company associations ({pages} pages of <= 500).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--plain-pairs", type=int, default=30)
    parser.add_argument("--fan", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
