"""The quiet account's latency next to a noisy one: p50/p99 of everyday calls alone, then while another
account sends bad requests, big uploads and poisoned imports (corral_devtools.neighbours), in one run.

Boots a private suite (no emulator). Usage: uv run python bench/gateway/bench_noisy_neighbour.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import httpx
from corral_devtools.benchkit import ms, pct
from corral_devtools.neighbours import Calls, Noise, noisy_neighbour, quiet_account
from corral_devtools.suite import Suite


async def measure(suite: Suite, rounds: int) -> None:
    quiet_token = suite.create_token("bench-quiet", "--rate-limit", "0")
    noisy_token = suite.create_token("bench-noisy", "--rate-limit", "0")
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=suite.gateway_url, headers={"Authorization": f"Bearer {quiet_token}"},
                                 timeout=120, limits=limits) as quiet, \
            httpx.AsyncClient(base_url=suite.gateway_url, headers={"Authorization": f"Bearer {noisy_token}"},
                              timeout=300, limits=limits) as noisy:
        await quiet_account(quiet, rounds=5, calls=Calls())  # warm up
        alone = Calls()
        await quiet_account(quiet, rounds=rounds, calls=alone)
        stop, noise, beside = asyncio.Event(), Noise(), Calls()
        neighbour = asyncio.create_task(noisy_neighbour(noisy, stop, noise))
        await asyncio.sleep(2)
        await quiet_account(quiet, rounds=rounds, calls=beside)
        stop.set()
        await neighbour
    print(f"\nquiet account: {rounds} rounds of 7 calls alone, then {rounds} beside the noisy one; "
          f"machine: {os.cpu_count()} cores, shared")
    print("| call | p50 alone ms | p99 alone ms | p50 beside ms | p99 beside ms |")
    print("|---|---:|---:|---:|---:|")
    for name in alone.latencies:
        a, b = alone.latencies[name], beside.latencies.get(name, [])
        print(f"| {name} | {ms(pct(a, 50))} | {ms(pct(a, 99))} | {ms(pct(b, 50))} | {ms(pct(b, 99))} |")
    a, b = alone.all_latencies(), beside.all_latencies()
    print(f"| all calls | {ms(pct(a, 50))} | {ms(pct(a, 99))} | {ms(pct(b, 50))} | {ms(pct(b, 99))} |")
    print(f"\nquiet account failures: alone {len(alone.failures)}, beside {len(beside.failures)} {beside.failures[:3]}")
    print(f"noisy account sent: {sum(noise.sent.values()):,} requests; server errors: {len(noise.server_errors)}")
    for kind, count in sorted(noise.sent.items()):
        print(f"  {kind}: {count}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    suite = Suite.on_free_ports(tag=f"bench_noisy_{os.getpid()}", extra_env={"CORRAL_LOG_LEVEL": "WARNING"})
    suite.migrate()
    suite.start(with_emulator=False)
    try:
        suite.wait_ready()
        asyncio.run(measure(suite, args.rounds))
    finally:
        suite.stop()
        suite.drop_databases()
    return 0


if __name__ == "__main__":
    sys.exit(main())
