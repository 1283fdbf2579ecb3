"""What holding rate limits across gateway replicas costs: GET throughput through the gateway with a rate
limited token, limits shared through Postgres (leased slices) against limits counted in the replica alone.

Boots a private suite (no emulator) and a second gateway process with GATEWAY_SHARED_RATE_LIMITS=false in
front of the same services. Each round measures, in alternating order, closed-loop single-record GETs:

- direct to records-svc (the floor),
- through the gateway with an unlimited token (no limiter work at all),
- through the gateway with a token limited to 1,000,000 calls per 10 s, limits shared (leases),
- through the second gateway with the same kind of token, limits per replica (the old way).

It prints req/s, p50 and p99 per kind, the ratios, and how many leases the shared limiter took (from the
gateway's /metrics). Usage: uv run python bench/gateway/bench_rate_limits.py [--seconds 5] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from corral_devtools.benchkit import DirectAuth, Sample, check, closed_loop, ms, pct
from corral_devtools.suite import Suite, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONTACTS = "/crm/v3/objects/contacts"


def start_local_gateway(suite: Suite) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**suite.env(), "GATEWAY_PORT": str(port), "GATEWAY_METRICS_PORT": str(free_port()),
           "GATEWAY_SHARED_RATE_LIMITS": "false"}
    log = (suite.log_dir / "gateway-local-limits.log").open("ab")
    process = subprocess.Popen([str(BIN / "corral-gateway")], env=env, cwd=ROOT, stdout=log, stderr=log,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the second gateway did not start")


def leases_taken(suite: Suite) -> float:
    text = httpx.get(suite.metrics_url("gateway"), timeout=10).text
    return sum(float(m.group(1)) for m in re.finditer(
        r'^corral_gateway_rate_limit_leases_total\{outcome="granted"\} ([0-9.e+]+)$', text, re.MULTILINE))


async def measure(args: argparse.Namespace, suite: Suite, local_url: str) -> None:
    # Three tokens of one account, so every path reads the same records.
    unlimited, account_id = suite.create_unlimited_token("bench-rate")
    limited = suite.create_token("bench-rate", "--rate-limit", "1000000", "--daily-limit", "2000000000")
    local_limited = suite.create_token("bench-rate", "--rate-limit", "1000000", "--daily-limit", "2000000000")
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)

    def client(base: str, **kw: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, limits=limits, timeout=60, **kw)  # type: ignore[arg-type]

    async with client(suite.url("records-svc"), auth=DirectAuth(account_id)) as direct:
        seeded = check(await direct.post("/internal/v1/records/contacts/bulk-upsert", json={
            "operation": "UPSERT", "idProperty": "email", "rows": [
                {"ref": i, "properties": {"email": f"rate{i}@bench.example", "firstname": f"F{i}"}}
                for i in range(200)]}), 200).json()
    ids = [r["id"] for r in seeded["results"]]
    paths = itertools.cycle([("GET", f"{CONTACTS}/{i}", None) for i in ids])

    def next_get() -> tuple[str, str, bytes | None]:
        return next(paths)

    kinds = {
        "direct to records-svc": (suite.url("records-svc"), {"auth": DirectAuth(account_id)}),
        "gateway, unlimited token": (suite.gateway_url, {"headers": {"Authorization": f"Bearer {unlimited}"}}),
        "gateway, limited, shared (leases)": (suite.gateway_url, {"headers": {"Authorization": f"Bearer {limited}"}}),
        "gateway, limited, per replica": (local_url, {"headers": {"Authorization": f"Bearer {local_limited}"}}),
    }
    samples = {name: Sample() for name in kinds}
    leases_before = leases_taken(suite)
    shared_calls = 0
    for round_number in range(args.rounds):
        order = list(kinds) if round_number % 2 == 0 else list(reversed(kinds))
        for name in order:
            base, options = kinds[name]
            async with client(base, **options) as http:
                await closed_loop(http, next_get, concurrency=args.concurrency, seconds=0.5, into=Sample())  # warm
                before = len(samples[name].latencies) + samples[name].errors
                sample = samples[name]
                await closed_loop(http, next_get, concurrency=args.concurrency, seconds=args.seconds, into=sample)
                if "shared" in name:
                    shared_calls += len(sample.latencies) + sample.errors - before
            print(f"  round {round_number + 1} {name:<36} {sample.rate:8.0f} req/s so far", flush=True)
    leases = leases_taken(suite) - leases_before
    floor = samples["direct to records-svc"].rate
    unlimited_rate = samples["gateway, unlimited token"].rate
    print()
    print(f"GET /crm/v3/objects/contacts/{{id}}, {args.concurrency} concurrent, {args.rounds} rounds of "
          f"{args.seconds:g} s each (order alternating); machine: {os.cpu_count()} cores, shared")
    print("| path | req/s | p50 ms | p99 ms | vs direct | vs gateway unlimited |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, sample in samples.items():
        print(f"| {name} | {sample.rate:,.0f} | {ms(pct(sample.latencies, 50))} | {ms(pct(sample.latencies, 99))} | "
              f"{sample.rate / floor:.0%} | {sample.rate / unlimited_rate:.0%} |")
    errors = {name: sample.errors for name, sample in samples.items() if sample.errors}
    if errors:
        print(f"errors (not 200): {errors}")
    print(f"\nshared limiter: {leases:,.0f} leases for {shared_calls:,} calls "
          f"({shared_calls / leases if leases else float('nan'):,.0f} calls per Postgres round trip)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    suite = Suite.on_free_ports(tag=f"bench_rate_{os.getpid()}", extra_env={"CORRAL_LOG_LEVEL": "WARNING"})
    suite.migrate()
    suite.start(with_emulator=False)
    local: subprocess.Popen[bytes] | None = None
    try:
        suite.wait_ready()
        local, local_url = start_local_gateway(suite)
        asyncio.run(measure(args, suite, local_url))
    finally:
        if local is not None:
            local.terminate()
            local.wait(timeout=15)
        suite.stop()
        suite.drop_databases()
    return 0


if __name__ == "__main__":
    sys.exit(main())
