"""Throughput of the Salesforce emulator over real HTTP.

Starts the `salesforce-emulator` console script in a subprocess on free ports, seeds contacts through the
admin API, then measures with one keep-alive httpx client:
  * baseline: bare `GET /livez` requests per second (the HTTP + uvicorn + client budget),
  * query pages per second (page size 2000, following nextRecordsUrl, with a parent field),
  * collection writes per second (POST composite/sobjects, 200 new contacts each).
Each figure is printed with its ratio to the baseline, i.e. how much of the bare HTTP rate survives the
emulator's own work. The same two operations are then timed in-process (httpx.ASGITransport, no sockets)
to show what the emulator itself costs per call. Run: `uv run python bench/salesforce_emulator/bench_emulator.py [--seconds 8]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import httpx
import orjson

API = "/services/data/v60.0"
SEED_CONTACTS = 20_000
PAGE_SIZE = 2000
NEXT_RECORDS = re.compile(rb'"nextRecordsUrl":"([^"]+)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_emulator(cert_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    http_port, https_port = free_port(), free_port()
    env = dict(os.environ, SF_EMULATOR_HTTP_PORT=str(http_port), SF_EMULATOR_HTTPS_PORT=str(https_port),
               SF_EMULATOR_CERT_DIR=cert_dir, SF_EMULATOR_ENABLE_ADMIN="true", SF_EMULATOR_PAGE_SIZE=str(PAGE_SIZE),
               SF_EMULATOR_DAILY_API_REQUESTS="100000000")
    process = subprocess.Popen([sys.executable, "-c", "from salesforce_emulator.main import run; run()"], env=env,
                               stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/livez", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("emulator did not come up")


def rate(action: Callable[[], int], seconds: float) -> tuple[float, float]:
    """Run `action` repeatedly for `seconds`; returns (calls per second, units per second)."""
    action()  # warm-up: first-call costs (imports, JIT-free caches, connection) are not throughput
    calls = units = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        units += action()
        calls += 1
    return calls / elapsed, units / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per figure")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as cert_dir:
        process, base_url = start_emulator(cert_dir)
        try:
            run_benchmarks(base_url, arguments.seconds)
        finally:
            process.terminate()
            process.wait(timeout=10)
    asyncio.run(run_in_process(arguments.seconds / 2))


async def async_rate(action: Callable[[], Awaitable[int]], seconds: float) -> float:
    await action()
    units = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        units += await action()
    return units / elapsed


async def run_in_process(seconds: float) -> None:
    """The same two operations through httpx.ASGITransport: no sockets, no HTTP parsing, and the client
    never parses the JSON, so this is close to the emulator's own cost per call."""
    from salesforce_emulator.app import create_app
    from salesforce_emulator.settings import EmulatorSettings

    app = create_app(EmulatorSettings(page_size=PAGE_SIZE, daily_api_requests=10**9))
    store = app.state.org.store
    account_id = store.create("Account", {"Name": "Bench Account"}, user_id=None)
    for number in range(SEED_CONTACTS):
        store.create("Contact", {"FirstName": "Bench", "LastName": f"Contact {number}",
                                 "Email": f"bench{number}@example.com", "AccountId": account_id}, user_id=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        token = (await client.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "corral-emulator",
            "client_secret": "corral-emulator-secret"})).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        soql = "SELECT Id, FirstName, LastName, Email, SystemModstamp, Account.Name FROM Contact"

        async def query_all_pages() -> int:
            body = (await client.get(f"{API}/query", params={"q": soql})).content
            pages = 1
            while match := NEXT_RECORDS.search(body):
                body = (await client.get(match.group(1).decode())).content
                pages += 1
            return pages

        serial = 0

        async def collection_create() -> int:
            nonlocal serial
            serial += 1
            records = [{"attributes": {"type": "Contact"}, "LastName": f"Write {serial}-{n}",
                        "Email": f"w{serial}.{n}@example.com", "AccountId": account_id} for n in range(200)]
            response = await client.post(f"{API}/composite/sobjects", content=orjson.dumps(
                {"allOrNone": False, "records": records}), headers={"Content-Type": "application/json"})
            assert response.status_code == 200
            return 1

        pages = await async_rate(query_all_pages, seconds)
        writes = await async_rate(collection_create, seconds)
    print(f"In-process through httpx.ASGITransport (no sockets; {seconds:g} s per figure):")
    print(f"  query pages (2000 records)    {pages:9.1f} pages/s  = {pages * PAGE_SIZE:,.0f} records/s  "
          f"({1000 / pages:.1f} ms per page)")
    print(f"  collection creates (200 rows) {writes:9.1f} req/s    = {writes * 200:,.0f} records/s  "
          f"({1000 / writes:.1f} ms per call)")


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def run_benchmarks(base_url: str, seconds: float) -> None:
    started_load = load_average()
    with httpx.Client(base_url=base_url, timeout=60) as client:
        token = client.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "corral-emulator",
            "client_secret": "corral-emulator-secret"}).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        account_id = client.post(f"{API}/sobjects/Account", json={"Name": "Bench Account"}).json()["id"]
        for batch_start in range(0, SEED_CONTACTS, 5000):
            records = [{"attributes": {"type": "Contact"}, "FirstName": "Bench", "LastName": f"Contact {n}",
                        "Email": f"bench{n}@example.com", "AccountId": account_id}
                       for n in range(batch_start, batch_start + 5000)]
            assert client.post("/__emulator__/seed", json={"records": records}).status_code == 200

        def livez() -> int:
            client.get("/livez")
            return 1

        soql = "SELECT Id, FirstName, LastName, Email, SystemModstamp, Account.Name FROM Contact"
        pages_per_query = 0

        def query_all_pages() -> int:
            nonlocal pages_per_query
            # orjson keeps the client's own parsing from dominating what is meant to be the server's cost.
            page = orjson.loads(client.get(f"{API}/query", params={"q": soql}).content)
            pages = 1
            while not page["done"]:
                page = orjson.loads(client.get(page["nextRecordsUrl"]).content)
                pages += 1
            pages_per_query = pages
            return pages

        serial = 0

        def collection_create() -> int:
            nonlocal serial
            serial += 1
            records = [{"attributes": {"type": "Contact"}, "LastName": f"Write {serial}-{n}",
                        "Email": f"w{serial}.{n}@example.com", "AccountId": account_id} for n in range(200)]
            response = client.post(f"{API}/composite/sobjects", content=orjson.dumps(
                {"allOrNone": False, "records": records}), headers={"Content-Type": "application/json"})
            results = orjson.loads(response.content)
            assert response.status_code == 200 and all(result["success"] for result in results)
            return 1

        baseline, _ = rate(livez, seconds)
        _, pages = rate(query_all_pages, seconds)
        writes, _ = rate(collection_create, seconds)

    print(f"Salesforce emulator benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: nproc "
          f"{os.cpu_count()}, Python {sys.version.split()[0]}; load average (1/5/15 min) {started_load} at the "
          f"start, {load_average()} at the end; {seconds:g} s per figure")
    print(f"HTTP/1.1, one keep-alive httpx client in the same machine; {SEED_CONTACTS} contacts seeded; "
          f"page size {PAGE_SIZE}, {pages_per_query} pages per query")
    print(f"  baseline GET /livez           {baseline:9.1f} req/s")
    print(f"  query pages (2000 records)    {pages:9.1f} pages/s  = {pages * PAGE_SIZE:,.0f} records/s  "
          f"ratio to baseline {pages / baseline:.3f}")
    print(f"  collection creates (200 rows) {writes:9.1f} req/s    = {writes * 200:,.0f} records/s  "
          f"ratio to baseline {writes / baseline:.3f}")


if __name__ == "__main__":
    main()
