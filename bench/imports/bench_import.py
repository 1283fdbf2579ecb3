"""Import benchmark: a seeded 10-column contacts file through the gateway, against a bare COPY + upsert.

    uv run python bench/imports/bench_import.py [--rows 1000000] [--xlsx-rows 200000]

Boots one private copy of the suite (free ports, throwaway databases, stopped and dropped at the
end), generates the files with `random.Random(42)` (2% of the rows repeat an earlier email, so the
import deduplicates by email), uploads them through the gateway with HubSpot's multipart request
(UPSERT by email), polls the status until DONE and reports:

- rows/s from the upload's start to DONE (upload, parse, validation, records writes, checkpoints);
- peak RSS of import-svc and records-svc (psutil, sampled every 0.25 s);
- the baseline, measured in the same run on the same Postgres: COPY of the same CSV into a staging
  table, then one `INSERT .. SELECT DISTINCT ON (email) .. ON CONFLICT (email) DO UPDATE` into a
  plain 10-column table, and the import's throughput as a fraction of it;
- a second reference, the "schema floor": the same rows, deduplicated and prepared beforehand, COPYed
  and inserted set-based into Corral's own records schema by one backend (records with their creation
  source and GIN-indexed search words, unique email claims, the journal): what the data model costs, apart from
  what the services add;
- the same for an XLSX file (fewer rows by default: writing XLSX with openpyxl costs ~1 min per
  200k rows here, and the point is the reader's throughput, not the file size).

Nothing asserts a timing; the machine is shared, so compare ratios across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from corral_devtools.suite import Suite

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLUMNS = [("Email", "email"), ("First Name", "firstname"), ("Last Name", "lastname"), ("Phone", "phone"),
           ("City", "city"), ("Country", "country"), ("Job Title", "jobtitle"), ("Company", "company"),
           ("Website", "website"), ("Date of Birth", "date_of_birth")]
FIRST = ["Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sven", "Tara"]
LAST = ["Müller", "Smith", "García", "Rossi", "Dubois", "Nowak", "Jensen", "Silva", "Kowalski", "Brown",
        "Martin", "Novak", "Fischer", "Lopez", "Moreau", "Weber", "Khan", "Ivanova", "Berg", "Costa"]
CITIES = [("Berlin", "Germany"), ("Paris", "France"), ("Madrid", "Spain"), ("Rome", "Italy"), ("Boston", "USA"),
          ("Lyon", "France"), ("Munich", "Germany"), ("Porto", "Portugal"), ("Oslo", "Norway"), ("Austin", "USA")]
JOBS = ["Engineer", "Buyer", "CEO", "Designer", "Analyst", "Sales Rep", "Nurse", "Teacher", "Lawyer", "Chef"]



def generate_rows(rows: int, seed: int = 42) -> list[list[str]]:
    rng = random.Random(seed)
    out: list[list[str]] = []
    birth0 = date(1950, 1, 1)
    for i in range(rows):
        if i > 100 and rng.random() < 0.02:
            email = out[rng.randrange(len(out))][0]  # a repeated email: the import must dedupe it
        else:
            email = f"contact{i}.{rng.randrange(10**6)}@bench{i % 5000}.example.com"
        city, country = rng.choice(CITIES)
        company = f"Company {i % 5000}"
        out.append([email, rng.choice(FIRST), rng.choice(LAST), f"+49 30 {rng.randrange(10**7):07d}", city, country,
                    rng.choice(JOBS), company, f"https://bench{i % 5000}.example.com",
                    (birth0 + timedelta(days=rng.randrange(20000))).strftime("%m/%d/%Y")])
    return out


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([c for c, _ in COLUMNS])
        writer.writerows(rows)


def write_xlsx(path: Path, rows: list[list[str]]) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("contacts")
    sheet.append([c for c, _ in COLUMNS])
    for row in rows:
        sheet.append(row)
    workbook.save(path)



class PeakRss(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = {name: 0 for name in pids}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for name, process in self.processes.items():
                try:
                    rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak[name], rss)
            time.sleep(0.25)


def import_request(file_name: str, file_format: str) -> dict[str, Any]:
    return {"name": f"bench {file_name}", "importOperations": {"0-1": "UPSERT"}, "dateFormat": "MONTH_DAY_YEAR",
            "files": [{"fileName": file_name, "fileFormat": file_format, "fileImportPage": {"hasHeader": True,
                       "columnMappings": [{"columnObjectTypeId": "0-1", "columnName": c, "propertyName": p}
                                          for c, p in COLUMNS]}}]}


def run_import(gateway: str, token: str, path: Path, file_format: str, pids: dict[str, int]) -> dict[str, Any]:
    sampler = PeakRss(pids)
    sampler.start()
    started = time.perf_counter()
    with httpx.Client(base_url=gateway, headers={"authorization": f"Bearer {token}"}, timeout=600) as http, \
            path.open("rb") as fh:
        mime = "text/csv" if file_format == "CSV" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        response = http.post("/crm/v3/imports/", data={"importRequest": json.dumps(import_request(path.name, file_format))},
                             files=[("files", (path.name, fh, mime))])
        if response.status_code != 200:
            raise RuntimeError(f"start failed: {response.status_code} {response.text[:500]}")
        accepted = time.perf_counter()
        import_id = response.json()["id"]
        while True:
            status = http.get(f"/crm/v3/imports/{import_id}").json()
            if status["state"] in ("DONE", "FAILED", "CANCELED"):
                break
            time.sleep(0.5)
        errors = http.get(f"/crm/v3/imports/{import_id}/errors", params={"limit": 5}).json()["results"]
    finished = time.perf_counter()
    sampler.stopped.set()
    sampler.join()
    return {"state": status["state"], "counters": status["metadata"]["counters"], "seconds": finished - started,
            "upload_seconds": accepted - started, "peak_rss": sampler.peak, "sample_errors": errors}


@asynccontextmanager
async def scratch_connection(pg_url: str, prefix: str, *, records_schema: bool = False
                             ) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a throwaway database (records-svc's migrations applied if asked), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(f"{pg_url}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        if records_schema:
            env = {**os.environ, "RECORDS_SVC_DATABASE_URL": f"postgresql+asyncpg://{pg_url.split('://', 1)[1]}/{name}"}
            await asyncio.to_thread(subprocess.run, [str(BIN / "records-svc-migrate")], env=env, check=True,
                                    capture_output=True)
        conn = await asyncpg.connect(f"{pg_url}/{name}")
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def baseline(pg_url: str, csv_path: Path) -> dict[str, float]:
    async with scratch_connection(pg_url, "corral_bench_baseline") as conn:
        cols = ", ".join(f"{p} text" for _, p in COLUMNS[1:])
        await conn.execute(f"CREATE TABLE contacts (id bigserial, email text PRIMARY KEY, {cols})")
        await conn.execute(f"CREATE UNLOGGED TABLE staging (email text, {cols})")
        started = time.perf_counter()
        await conn.copy_to_table("staging", source=str(csv_path), format="csv", header=True)
        copied = time.perf_counter()
        names = ", ".join(p for _, p in COLUMNS)
        updates = ", ".join(f"{p} = EXCLUDED.{p}" for _, p in COLUMNS[1:])
        await conn.execute(f"""
            INSERT INTO contacts ({names})
            SELECT DISTINCT ON (lower(email)) lower(email), {', '.join(p for _, p in COLUMNS[1:])} FROM staging
            ON CONFLICT (email) DO UPDATE SET {updates}""")
        done = time.perf_counter()
    return {"copy_seconds": copied - started, "total_seconds": done - started}


async def schema_floor(pg_url: str, rows: list[list[str]]) -> dict[str, float]:
    """The same rows stored straight into Corral's own records schema, by one Postgres backend.

    What Postgres alone spends to hold these rows in the product's data model: records with their
    creation source (their history) and generated search words (GIN-indexed), the unique email claims
    and the journal that revert reads. The rows are deduplicated and turned into the stored JSON
    beforehand (not timed); the timing covers the COPY and the set-based INSERTs in one transaction.
    The import runs two writers at once, so it can beat this single-backend figure; what it shows is
    the data model's cost against the plain table.
    """
    latest: dict[str, dict[str, str]] = {}
    for row in rows:
        latest.setdefault(row[0].lower(), {}).update({p: v for (_, p), v in zip(COLUMNS, row, strict=True) if v})
    stored = [(record_id, json.dumps(props)) for record_id, props in enumerate(latest.values(), start=1001)]
    async with scratch_connection(pg_url, "corral_bench_schema", records_schema=True) as conn:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE fresh (id bigint, props jsonb) ON COMMIT DROP")
            await conn.copy_records_to_table("fresh", records=stored)
            copied = time.perf_counter()
            await conn.execute("INSERT INTO records (id, account_id, object_type_id, properties, created_source) "
                               "SELECT id, 1, '0-1', props, '{\"timestamp\": \"2026-01-01T00:00:00.000Z\", "
                               "\"sourceType\": \"IMPORT\", \"sourceId\": \"1\"}' FROM fresh")
            await conn.execute("INSERT INTO unique_values (account_id, object_type_id, namespace, value, record_id) "
                               "SELECT 1, '0-1', 'email', lower(props ->> 'email'), id FROM fresh")
            await conn.execute("INSERT INTO journal (operation_id, account_id, object_type_id, record_id, kind, "
                               "new_values) SELECT 'import:1', 1, '0-1', id, 'CREATE', props FROM fresh")
        done = time.perf_counter()
    return {"copy_seconds": copied - started, "total_seconds": done - started}


def mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=200_000)
    args = parser.parse_args()
    pg_url = os.environ.get("CORRAL_PG_URL", "postgresql://postgres@127.0.0.1:5432")
    work = Path(tempfile.mkdtemp(prefix="corral-bench-imports-"))
    t0 = time.perf_counter()
    rows = generate_rows(args.rows)
    csv_path = work / "contacts.csv"
    write_csv(csv_path, rows)
    distinct = len({r[0] for r in rows})
    print(f"generated {args.rows:,} rows ({distinct:,} distinct emails), {mb(csv_path.stat().st_size)} CSV "
          f"in {time.perf_counter() - t0:.1f}s", flush=True)
    xlsx_path = work / "contacts.xlsx"
    xlsx_rows = rows[: args.xlsx_rows]
    if args.xlsx_rows:
        t0 = time.perf_counter()
        write_xlsx(xlsx_path, xlsx_rows)
        print(f"generated {len(xlsx_rows):,}-row XLSX ({mb(xlsx_path.stat().st_size)}) in "
              f"{time.perf_counter() - t0:.1f}s", flush=True)

    suite = Suite.on_free_ports(tag=f"bench_imports_{uuid.uuid4().hex[:6]}", extra_env={
        "CORRAL_LOG_LEVEL": "WARNING", "IMPORT_SVC_FILE_STORE_DIR": str(work / "store")})
    results: dict[str, Any] = {}
    try:
        suite.migrate()
        suite.start(with_emulator=False)
        suite.wait_ready()
        pids = {name: suite.processes[name].pid for name in ("import-svc", "records-svc")}
        results["csv"] = run_import(suite.gateway_url, suite.create_unlimited_token("bench-imports-csv")[0], csv_path, "CSV", pids)
        print("CSV import:", results["csv"], flush=True)
        if args.xlsx_rows:
            results["xlsx"] = run_import(suite.gateway_url, suite.create_unlimited_token("bench-imports-xlsx")[0], xlsx_path,
                                         "SPREADSHEET", pids)
            print("XLSX import:", results["xlsx"], flush=True)
    finally:
        suite.stop()
        suite.drop_databases()
    results["baseline"] = asyncio.run(baseline(pg_url, csv_path))
    results["schema_floor"] = asyncio.run(schema_floor(pg_url, rows))

    base = results["baseline"]
    base_rate = args.rows / base["total_seconds"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    print(f"\nImport benchmark, {stamp}, commit {commit}, nproc {os.cpu_count()}, load {os.getloadavg()}")
    print("| file | rows | distinct emails | state | seconds (upload) | rows/s | created | updated | errors | "
          "peak RSS import-svc | peak RSS records-svc | vs bare COPY+upsert | vs the same into Corral's schema |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    floor = results["schema_floor"]
    floor_rate = args.rows / floor["total_seconds"]
    for kind, count in (("csv", args.rows), ("xlsx", len(xlsx_rows))):
        if kind not in results:
            continue
        r = results[kind]
        rate = count / r["seconds"]
        c = r["counters"]
        print(f"| {kind.upper()} | {count:,} | {len({x[0] for x in rows[:count]}):,} | {r['state']} | "
              f"{r['seconds']:.1f} ({r['upload_seconds']:.1f}) | {rate:,.0f} | {c.get('CREATED_OBJECTS', 0):,} | "
              f"{c.get('UPDATED_OBJECTS', 0):,} | {c.get('ERRORS', 0):,} | {mb(r['peak_rss']['import-svc'])} | "
              f"{mb(r['peak_rss']['records-svc'])} | {rate / base_rate:.1%} | {rate / floor_rate:.1%} |")
    print(f"| baseline: COPY + INSERT .. ON CONFLICT into a plain table | {args.rows:,} | | | "
          f"{base['total_seconds']:.1f} (COPY {base['copy_seconds']:.1f}) | {base_rate:,.0f} | | | | | | 100% | |")
    print(f"| schema floor: the prepared rows COPYed and inserted into Corral's records, unique values, journal | "
          f"{args.rows:,} | | | {floor['total_seconds']:.1f} (COPY {floor['copy_seconds']:.1f}) | {floor_rate:,.0f} "
          f"| | | | | | {floor_rate / base_rate:.1%} | 100% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
