"""What metrics and traces cost per request.

1. In process, no network: one FastAPI route called straight through ASGI, 3 ways in alternated rounds
   (CPU time of the process, best round):
   bare (baseline), with the request-metrics middleware every service runs, and with that plus the
   OpenTelemetry server instrumentation recording every span (batched to an exporter that drops them).
2. A real records-svc (its own migrated throwaway database), twice: tracing off and tracing on (spans over
   OTLP/HTTP to a local collector that discards them), both serving at once; 8 concurrent clients read one
   contact, 10 s slots alternated off/on/on/off. Baseline: tracing off. Also the CPU each request costs the
   records-svc process (from /proc), which is steadier than req/s on a shared machine.

    uv run python bench/observability/bench_observability.py [--calls 20000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from corral_devtools.benchkit import DirectAuth, check, pct
from crm_common.observability.metrics import RequestMetricsMiddleware
from crm_common.testing import migrated_database, unique_exchange
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = 424242


# ---- 1. in process ------------------------------------------------------------------------------------

class DroppingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def thing_app(*, metrics: bool, traced: bool) -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    if metrics:
        app.add_middleware(RequestMetricsMiddleware)
    if traced:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["receive", "send"])
    return app


async def call(app: Any, n: int) -> float:
    """CPU seconds of this process for n GETs straight through the ASGI interface (CPU rather than wall
    time: the machine is shared, and other work would count in wall time)."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    started = time.process_time()
    for i in range(n):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": f"/things/{i}", "raw_path": f"/things/{i}".encode(),
                 "query_string": b"", "headers": [(b"host", b"bench")], "server": ("bench", 80),
                 "client": ("127.0.0.1", 1234), "root_path": "", "state": {}}
        await app(scope, receive, send)
    return time.process_time() - started


async def in_process(calls: int, rounds: int) -> None:
    variants = {"bare FastAPI (baseline)": thing_app(metrics=False, traced=False),
                "+ request metrics": thing_app(metrics=True, traced=False),
                "+ request metrics + server spans": thing_app(metrics=True, traced=True)}
    for app in variants.values():  # build the middleware stacks and warm up
        await call(app, 500)
    per_call: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, app in variants.items():
            per_call[name].append(await call(app, calls) / calls)
    base = min(per_call["bare FastAPI (baseline)"])
    print(f"\n1. In process, {calls:,} calls x {rounds} alternated rounds, best round per variant\n")
    print("| variant | CPU us per request | added us | ratio to baseline |")
    print("|---|---:|---:|---:|")
    for name, values in per_call.items():
        best = min(values)
        print(f"| {name} | {best * 1e6:,.1f} | {(best - base) * 1e6:,.1f} | {best / base:.2f} |")


# ---- 2. records-svc, tracing off and on ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DiscardingCollector:
    def __init__(self) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_records(database: str, logs: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {**os.environ, "RECORDS_SVC_PORT": str(port), "RECORDS_SVC_DATABASE_URL": database,
                   "CORRAL_EXCHANGE": unique_exchange("corral.bench"), "CORRAL_QUEUE_EXPIRES_MS": "600000",
                   "CORRAL_LOG_LEVEL": "WARNING", **env}
    log = (logs / f"records-{port}.log").open("wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "records-svc")], env=environment, stdout=log,
                               stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"records-svc did not start; see {log.name}")
        time.sleep(0.2)


async def load(url: str, record_id: str, seconds: float, clients: int = 8) -> list[float]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, auth=DirectAuth(ACCOUNT), timeout=30) as client:
        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                check(await client.get(f"/crm/v3/objects/contacts/{record_id}"), 200)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


async def with_records_service(seconds: float) -> None:
    collector = DiscardingCollector()
    with tempfile.TemporaryDirectory() as logs:
        async with migrated_database(ROOT / "services" / "records-svc", "corral_bench_otel") as database:
            off, off_url = start_records(database, Path(logs))
            on, on_url = start_records(database, Path(logs), OTEL_EXPORTER_OTLP_ENDPOINT=collector.url)
            try:
                async with httpx.AsyncClient(base_url=off_url, auth=DirectAuth(ACCOUNT)) as client:
                    created = check(await client.post("/crm/v3/objects/contacts", json={"properties": {
                        "email": f"bench-{time.time_ns()}@example.com", "firstname": "Bench"}}), 201).json()
                for url in (off_url, on_url):
                    await load(url, created["id"], 2)  # warm up
                runs: dict[str, dict[str, float]] = {"tracing off (baseline)": {}, "tracing on, OTLP": {}}
                for name, process, url in [("tracing off (baseline)", off, off_url), ("tracing on, OTLP", on, on_url),
                                           ("tracing on, OTLP", on, on_url), ("tracing off (baseline)", off, off_url)]:
                    cpu_before, started = cpu_seconds(process.pid), time.monotonic()
                    latencies = await load(url, created["id"], seconds)
                    elapsed, cpu = time.monotonic() - started, cpu_seconds(process.pid) - cpu_before
                    figures = runs[name]
                    figures["requests"] = figures.get("requests", 0) + len(latencies)
                    figures["seconds"] = figures.get("seconds", 0) + elapsed
                    figures["cpu"] = figures.get("cpu", 0) + cpu
                    figures.setdefault("latencies", [])  # type: ignore[arg-type]
                    figures["latencies"] += latencies  # type: ignore[operator]
            finally:
                for process in (off, on):
                    process.terminate()
                    process.wait(timeout=20)
    base = runs["tracing off (baseline)"]
    print(f"\n2. records-svc, GET one contact, 8 clients, 2 alternated slots of {seconds:.0f} s each; "
          f"{collector.requests} OTLP export requests received\n")
    print("| records-svc | req/s | p50 ms | p99 ms | CPU ms per request | throughput vs baseline | "
          "CPU vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, f in runs.items():
        rate, cpu_per = f["requests"] / f["seconds"], f["cpu"] / f["requests"] * 1000
        base_rate, base_cpu = base["requests"] / base["seconds"], base["cpu"] / base["requests"] * 1000
        lat = f["latencies"]  # type: ignore[assignment]
        print(f"| {name} | {rate:,.0f} | {pct(lat, 50) * 1000:.1f} | {pct(lat, 99) * 1000:.1f} | {cpu_per:.2f} | "
              f"{rate / base_rate:.0%} | {cpu_per / base_cpu:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"Observability benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: nproc {os.cpu_count()}, "
          f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    asyncio.run(in_process(args.calls, args.rounds))
    asyncio.run(with_records_service(args.seconds))
    print(f"\nload average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
