"""Associations benchmark: creating 100,000 contact-company associations, and reading a record with 1,000.

    uv run python bench/records/bench_associations.py                 # part 1 capped at 240 s, ~7 min in all
    uv run python bench/records/bench_associations.py --budget 0      # all 100,000 associations, however long
    uv run python bench/records/bench_associations.py --associations 4000 --reads 10 --budget 30   # quick check

Boots one private copy of the suite (gateway + services + emulator on free ports, throwaway databases,
dropped at the end) and measures, in that one run, through the gateway:

1. `POST /crm/v4/associations/contacts/companies/batch/associate/default`, `--per-batch` (2,000, the
   API's maximum) inputs per call, one call at a time, until `--associations` contacts are each associated
   with one company (`--fan` contacts per company, pairs shuffled by seed): total time, associations/s,
   p50/p99 per call. At this commit the endpoint writes one input at a time (~6 statements each), so all
   100,000 take far longer than a benchmark should: part 1 stops after the call that crosses `--budget`
   seconds, reports how many it created and what all would take at that rate, and the read company's
   missing associations are then created untimed for part 2. Baseline: the very rows the API wrote (2 per association: the pair and its inverse)
   copied by `INSERT ... SELECT` and by COPY into scratch tables with the same columns and primary key in
   the same database, same run; the ratio is how many times slower than a plain set-based write the API is;
2. reading a company with `--fan` associated contacts: `GET /crm/v4/objects/companies/{id}/associations/contacts`
   following `paging.next.after` until all are read (two pages of 500 for 1,000), and
   `GET /crm/v3/objects/companies/{id}?associations=contacts`; `--reads` of each, interleaved with the
   baseline `GET /crm/v3/objects/companies/{id}` (no associations); ratios of p50s.

Records are seeded through records-svc's internal bulk route (signed as the gateway would, for the account
behind the gateway token, whose id `corral-admin create-token` reports). Afterwards the script prints
EXPLAIN ANALYZE of the SQL behind both paths and the per-table row counts the writes produced.
Nothing here asserts a timing; the load generator shares the machine with the suite and Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from corral_devtools.benchkit import DirectAuth, check, ms, pct
from corral_devtools.suite import Suite

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BULK = "/internal/v1/records/{}/bulk-upsert"
ASSOCIATE = "/crm/v4/associations/contacts/companies/batch/associate/default"



# --- figures ---------------------------------------------------------------------------------------------




@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        return pct(self.latencies, q)


# --- clients ---------------------------------------------------------------------------------------------


def client(base_url: str, *, auth: httpx.Auth | None = None, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=base_url, auth=auth, headers=headers, timeout=300,
                             limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))




async def pg(database_url: str):  # type: ignore[no-untyped-def]
    import asyncpg

    return await asyncpg.connect(database_url)


# --- seeding ---------------------------------------------------------------------------------------------


async def seed(direct: httpx.AsyncClient, object_type: str, rows: list[dict[str, str]], *, id_property: str | None,
               chunk: int = 20_000, parallel: int = 2) -> list[int]:
    """Create `rows` through the internal bulk route; returns their ids in order."""
    ids: list[int] = [0] * len(rows)
    gate = asyncio.Semaphore(parallel)

    async def one(start: int) -> None:
        part = rows[start:start + chunk]
        body = {"operation": "CREATE", "idProperty": id_property, "sourceType": "IMPORT",
                "rows": [{"ref": start + i, "properties": p} for i, p in enumerate(part)]}
        async with gate:
            response = check(await direct.post(BULK.format(object_type), json=body), 200)
        for r in response.json()["results"]:
            if r["status"] != "CREATED":
                raise RuntimeError(f"seeding {object_type}: row {r['ref']} -> {r}")
            ids[r["ref"]] = int(r["id"])

    await asyncio.gather(*(one(s) for s in range(0, len(rows), chunk)))
    return ids


# --- 1. batch associate ----------------------------------------------------------------------------------


TABLES = ("associations", "journal", "outbox")


async def db_counters(conn: Any) -> dict[str, float]:
    """Rows inserted per table, plus the database's statement-execution time (ms) and commits."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = await conn.fetch("SELECT relname, n_tup_ins FROM pg_stat_user_tables WHERE relname = ANY($1)",
                            list(TABLES))
    out: dict[str, float] = {r["relname"]: r["n_tup_ins"] for r in rows}
    db = await conn.fetchrow("SELECT active_time, xact_commit FROM pg_stat_database WHERE datname = "
                             "current_database()")
    out["active_ms"], out["commits"] = db["active_time"], db["xact_commit"]
    return out


async def bench_associate(gateway: httpx.AsyncClient, pairs: list[tuple[int, int]], per_batch: int, *,
                          budget: float = 0.0, quiet: bool = False) -> tuple[Sample, float, int]:
    """Sends the pairs in batch calls, one at a time; stops early once `budget` seconds (if > 0) have passed.
    Returns per-call latencies, wall time and how many pairs were sent."""
    batches = [pairs[i:i + per_batch] for i in range(0, len(pairs), per_batch)]
    sample = Sample()
    started = time.perf_counter()
    sent = 0
    for n, batch in enumerate(batches, 1):
        if budget > 0 and time.perf_counter() - started >= budget:
            print(f"  time budget of {budget:.0f} s spent after {n - 1} calls; stopping part 1 there", flush=True)
            break
        body = {"inputs": [{"from": {"id": str(c)}, "to": {"id": str(co)}} for c, co in batch]}
        t0 = time.perf_counter()
        response = check(await gateway.post(ASSOCIATE, json=body), 200)
        sample.latencies.append(time.perf_counter() - t0)
        got = response.json()
        if got.get("status") != "COMPLETE" or len(got["results"]) != len(batch):
            raise RuntimeError(f"batch {n}: unexpected answer {str(got)[:300]}")
        sent += len(batch)
        if not quiet:
            print(f"  {n}/{len(batches)} calls, this one {sample.latencies[-1]:.2f} s, "
                  f"{sent / (time.perf_counter() - started):,.0f} associations/s so far", flush=True)
    return sample, time.perf_counter() - started, sent


@dataclass
class Baseline:
    name: str
    rows: int
    seconds: float


async def baselines(database_url: str, account_id: int) -> list[Baseline]:
    """The rows the API wrote, written again by plain set-based SQL into scratch tables (same columns, same
    primary key; the second COPY also with the same two secondary indexes), then dropped."""
    conn = await pg(database_url)
    out = []
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_assoc_scratch")
        await conn.execute("CREATE TABLE bench_assoc_scratch (LIKE associations INCLUDING DEFAULTS "
                           "INCLUDING CONSTRAINTS)")
        await conn.execute("ALTER TABLE bench_assoc_scratch ADD PRIMARY KEY (from_id, to_id, category, type_id)")
        t0 = time.perf_counter()
        status = await conn.execute("INSERT INTO bench_assoc_scratch SELECT * FROM associations WHERE account_id = $1",
                                    account_id)
        out.append(Baseline("INSERT ... SELECT, primary key only", int(status.split()[-1]),
                            time.perf_counter() - t0))
        records = await conn.fetch("SELECT account_id, from_object_type_id, from_id, to_object_type_id, to_id, "
                                   "category, type_id, created_at FROM associations WHERE account_id = $1",
                                   account_id)
        columns = ["account_id", "from_object_type_id", "from_id", "to_object_type_id", "to_id", "category",
                   "type_id", "created_at"]
        await conn.execute("TRUNCATE bench_assoc_scratch")
        t0 = time.perf_counter()
        await conn.copy_records_to_table("bench_assoc_scratch", records=records, columns=columns)
        out.append(Baseline("COPY from the client, primary key only", len(records), time.perf_counter() - t0))
        await conn.execute("DROP TABLE bench_assoc_scratch")
        await conn.execute("CREATE TABLE bench_assoc_scratch (LIKE associations INCLUDING ALL)")
        t0 = time.perf_counter()
        await conn.copy_records_to_table("bench_assoc_scratch", records=records, columns=columns)
        out.append(Baseline("COPY from the client, primary key + the 2 secondary indexes", len(records),
                            time.perf_counter() - t0))
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_assoc_scratch")
        await conn.close()
    return out


# --- 2. reads --------------------------------------------------------------------------------------------


async def read_all_v4(gateway: httpx.AsyncClient, company_id: int) -> tuple[int, int]:
    """(associations read, pages) following paging.next.after."""
    after: str | None = None
    total = pages = 0
    while True:
        params = {"limit": "500", **({"after": after} if after else {})}
        body = check(await gateway.get(f"/crm/v4/objects/companies/{company_id}/associations/contacts",
                                       params=params), 200).json()
        total += len(body["results"])
        pages += 1
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return total, pages


async def bench_reads(gateway: httpx.AsyncClient, company_id: int, fan: int, reads: int) -> tuple[
        dict[str, Sample], int]:
    kinds: dict[str, Sample] = {"GET company (baseline)": Sample(),
                                f"v4 list all {fan} (all pages)": Sample(),
                                "v4 list, one page of 500": Sample(),
                                "v3 GET company ?associations=contacts": Sample()}
    base, v4, v4_page, v3 = kinds.values()
    pages_seen = 0

    async def plain() -> None:
        check(await gateway.get(f"/crm/v3/objects/companies/{company_id}"), 200)

    async def v4_all() -> None:
        nonlocal pages_seen
        total, pages_seen = await read_all_v4(gateway, company_id)
        if total != fan:
            raise RuntimeError(f"v4 listing returned {total} associations, expected {fan}")

    async def v4_one() -> None:
        body = check(await gateway.get(f"/crm/v4/objects/companies/{company_id}/associations/contacts",
                                       params={"limit": "500"}), 200).json()
        if len(body["results"]) != min(500, fan):
            raise RuntimeError(f"v4 page had {len(body['results'])} results")

    async def v3_assoc() -> None:
        body = check(await gateway.get(f"/crm/v3/objects/companies/{company_id}",
                                       params={"associations": "contacts"}), 200).json()
        found = len(body.get("associations", {}).get("contacts", {}).get("results", []))
        if found != fan:
            raise RuntimeError(f"v3 read returned {found} associated contacts, expected {fan}")

    calls = [(base, plain), (v4, v4_all), (v4_page, v4_one), (v3, v3_assoc)]
    for _ in range(5):  # warm-up, not counted
        for _, call in calls:
            await call()
    for i in range(reads):
        # Rotate the order each round so no kind always follows the same neighbour.
        for sample, call in calls[i % 4:] + calls[:i % 4]:
            t0 = time.perf_counter()
            await call()
            sample.latencies.append(time.perf_counter() - t0)
    return kinds, pages_seen


# --- plans -----------------------------------------------------------------------------------------------


def plan_text(rows: list[Any]) -> str:
    """The plan's lines, with the literal id arrays of the batch statements shortened."""
    return "\n".join(re.sub(r"\{(\d+,){8}[\d,]+\}", lambda m: m.group(0)[:60] + "...}", r[0]) for r in rows)


async def explain(database_url: str, account_id: int, contact_id: int, company_id: int, read_company: int,
                  batch: list[tuple[int, int]]) -> str:
    """EXPLAIN ANALYZE of the statements records-svc runs (SQL copied from repository.py at this commit), and of
    the set-based statements one whole batch call would need instead (one existence check per side, one insert
    of every pair and its inverse), on the pairs of one batch the API created (deleted and re-inserted inside
    a transaction that is rolled back)."""
    conn = await pg(database_url)
    parts = []
    contacts = sorted({c for c, _ in batch})
    pair_rows = orjson.dumps(
        [{"ft": "0-1", "fi": c, "tt": "0-2", "ti": co, "c": "HUBSPOT_DEFINED", "ty": 279} for c, co in batch]
        + [{"ft": "0-2", "fi": co, "tt": "0-1", "ti": c, "c": "HUBSPOT_DEFINED", "ty": 280} for c, co in batch]
    ).decode()
    statements = [
        ("per input: existing_record_ids (run twice, once per side)",
         "SELECT id FROM records WHERE account_id = $1 AND object_type_id = $2 AND id = ANY($3::bigint[]) "
         "AND NOT archived", [account_id, "0-1", [contact_id]]),
        ("per input: association_rows_between (after the insert)",
         "SELECT * FROM associations WHERE account_id = $1 AND from_id = $2 AND to_id = $3 ORDER BY type_id",
         [account_id, contact_id, company_id]),
        ("v4 list, first page (associated_page, limit 501)",
         """SELECT a.to_id, array_agg(a.category ORDER BY a.type_id) AS categories,
                   array_agg(a.type_id ORDER BY a.type_id) AS type_ids
            FROM associations a JOIN records t ON t.id = a.to_id AND NOT t.archived
            WHERE a.account_id = $1 AND a.from_id = $2 AND a.to_object_type_id = $3 AND a.to_id > $4
            GROUP BY a.to_id ORDER BY a.to_id LIMIT $5""", [account_id, read_company, "0-1", 0, 501]),
        ("v3 ?associations=contacts (associations_of)",
         """SELECT a.from_id, a.to_object_type_id, a.to_id, a.category, a.type_id
            FROM associations a JOIN records t ON t.id = a.to_id AND NOT t.archived
            WHERE a.account_id = $1 AND a.from_id = ANY($2::bigint[]) AND a.to_object_type_id = ANY($3::text[])
            ORDER BY a.from_id, a.to_object_type_id, a.to_id, a.type_id""", [account_id, [read_company], ["0-1"]]),
    ]
    try:
        for title, sql, params in statements:
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params)
            parts.append(f"-- {title}\n" + plan_text(rows))
        # The insert of one association pair, rolled back so the data stays as the API left it.
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("DELETE FROM associations WHERE from_id = ANY($1::bigint[]) AND to_id = ANY($1::bigint[])",
                               [contact_id, company_id])
            rows = await conn.fetch(
                """EXPLAIN (ANALYZE, BUFFERS)
                   INSERT INTO associations (account_id, from_object_type_id, from_id, to_object_type_id, to_id,
                                             category, type_id)
                   SELECT $1, x.ft, x.fi, x.tt, x.ti, x.c, x.ty
                   FROM jsonb_to_recordset(CAST($2 AS jsonb)) AS x(ft text, fi bigint, tt text, ti bigint, c text,
                                                                  ty int)
                   ON CONFLICT DO NOTHING
                   RETURNING from_object_type_id, from_id, to_object_type_id, to_id, category, type_id""",
                account_id,
                f'[{{"ft":"0-1","fi":{contact_id},"tt":"0-2","ti":{company_id},"c":"HUBSPOT_DEFINED","ty":279}},'
                f'{{"ft":"0-2","fi":{company_id},"tt":"0-1","ti":{contact_id},"c":"HUBSPOT_DEFINED","ty":280}}]')
            parts.append("-- per input: insert_associations (2 rows: the pair and its inverse; rolled back)\n"
                         + plan_text(rows))
        finally:
            await tx.rollback()
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM records WHERE account_id = $1 AND object_type_id = $2 "
            "AND id = ANY($3::bigint[]) AND NOT archived", account_id, "0-1", contacts)
        parts.append(f"-- set-based alternative: one existence check for the {len(contacts):,} contacts of a "
                     "whole batch call\n" + plan_text(rows))
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(
                "DELETE FROM associations a USING unnest($1::bigint[], $2::bigint[]) AS p(c, co) "
                "WHERE (a.from_id = p.c AND a.to_id = p.co) OR (a.from_id = p.co AND a.to_id = p.c)",
                [c for c, _ in batch], [co for _, co in batch])
            rows = await conn.fetch(
                """EXPLAIN (ANALYZE, BUFFERS)
                   INSERT INTO associations (account_id, from_object_type_id, from_id, to_object_type_id, to_id,
                                             category, type_id)
                   SELECT $1, x.ft, x.fi, x.tt, x.ti, x.c, x.ty
                   FROM jsonb_to_recordset(CAST($2 AS jsonb)) AS x(ft text, fi bigint, tt text, ti bigint, c text,
                                                                  ty int)
                   ON CONFLICT DO NOTHING
                   RETURNING from_object_type_id, from_id, to_object_type_id, to_id, category, type_id""",
                account_id, pair_rows)
            parts.append(f"-- set-based alternative: insert_associations with all {2 * len(batch):,} rows of a "
                         "whole batch call in one statement (rolled back)\n" + plan_text(rows))
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return "\n\n".join(parts)


# --- report ----------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    pg_version = subprocess.run(["psql", "-At", "-h", "127.0.0.1", "-U", "postgres", "-c", "SHOW server_version"],
                                capture_output=True, text=True).stdout.strip() or "?"
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": str(os.cpu_count()),
            "python": sys.version.split()[0], "postgres": pg_version,
            "load_start": "/".join(f"{x:.1f}" for x in os.getloadavg())}


@dataclass
class Results:
    seed_seconds: float
    associate: Sample
    associate_seconds: float
    sent: int
    topped_up: int
    counters: dict[str, float]
    stored_rows: int
    baselines: list[Baseline]
    vacuum_seconds: float
    reads: dict[str, Sample]
    pages: int
    plans: str


async def measure(args: argparse.Namespace, suite: Any, token: str, account_id: int) -> Results:
    rng = random.Random(args.seed)
    n, fan = args.associations, args.fan
    companies = max(1, -(-n // fan))
    db = suite.databases["records-svc"]
    async with client(suite.url("records-svc"), auth=DirectAuth(account_id)) as direct, \
            client(suite.gateway_url, token=token) as gateway:
        print(f"Seeding {n:,} contacts and {companies + 1:,} companies through the internal bulk route", flush=True)
        t0 = time.perf_counter()
        contact_rows = [{"email": f"c{i}.{rng.randrange(10**6)}@bench-assoc.example", "firstname": f"First{i}",
                         "lastname": f"Last{i % 997}"} for i in range(n + 20)]
        contact_ids = await seed(direct, "contacts", contact_rows, id_property="email")
        company_rows = [{"name": f"Company {i}", "domain": f"company{i}.bench-assoc.example"}
                        for i in range(companies + 1)]
        company_ids = await seed(direct, "companies", company_rows, id_property=None)
        seed_seconds = time.perf_counter() - t0
        print(f"  seeded in {seed_seconds:.1f} s", flush=True)

        # Warm-up: one small batch on spare contacts and a spare company, outside the figures.
        spare = list(zip(contact_ids[n:n + 20], [company_ids[companies]] * 20, strict=True))
        await bench_associate(gateway, spare, args.per_batch, quiet=True)

        pairs = [(contact_ids[i], company_ids[i // fan]) for i in range(n)]
        rng.shuffle(pairs)
        conn = await pg(db)
        try:
            before = await db_counters(conn)
            print(f"1. {n:,} associations, {args.per_batch:,} per batch/associate/default call"
                  + (f" (time budget {args.budget:.0f} s)" if args.budget > 0 else ""), flush=True)
            sample, seconds, sent = await bench_associate(gateway, pairs, args.per_batch, budget=args.budget)
            await asyncio.sleep(1.5)  # table and database statistics are flushed about once a second
            after = await db_counters(conn)
        finally:
            await conn.close()
        counters = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        read_company = company_ids[0]
        # Part 2 needs the read company's `fan` associations: send those the budget cut off, untimed.
        rest = [p for p in pairs[sent:] if p[1] == read_company]
        if rest:
            print(f"  associating the {len(rest)} contacts of company {read_company} the budget left out "
                  "(untimed)", flush=True)
            await bench_associate(gateway, rest, args.per_batch, quiet=True)
        conn = await pg(db)
        try:
            stored = await conn.fetchval("SELECT count(*) FROM associations WHERE account_id = $1", account_id)
        finally:
            await conn.close()
        expected = 2 * (sent + len(rest) + len(spare))
        if stored != expected:
            raise RuntimeError(f"{stored} association rows stored, expected {expected}")
        print("  baselines: the same rows written by plain SQL into scratch tables", flush=True)
        base = await baselines(db, account_id)

        conn = await pg(db)
        try:
            t0 = time.perf_counter()
            await conn.execute("VACUUM (ANALYZE) associations")
            await conn.execute("VACUUM (ANALYZE) records")
            vacuum_seconds = time.perf_counter() - t0
        finally:
            await conn.close()
        print(f"2. {args.reads} reads of each kind of company {read_company} with {fan:,} associated contacts",
              flush=True)
        reads, pages = await bench_reads(gateway, read_company, fan, args.reads)
        plans = await explain(db, account_id, pairs[0][0], pairs[0][1], read_company, pairs[:args.per_batch])
    return Results(seed_seconds, sample, seconds, sent, len(rest), counters, stored, base, vacuum_seconds, reads,
                   pages, plans)


def report(args: argparse.Namespace, facts: dict[str, str], res: Results) -> str:
    n, sent = args.associations, res.sent
    api_rate = sent / res.associate_seconds
    calls = len(res.associate.latencies)
    c = res.counters
    if sent < n:
        scope = (f"{sent:,} of {n:,} associations created within the {args.budget:.0f} s budget ({calls} calls; at "
                 f"this rate all {n:,} would take {n / api_rate / 60:,.0f} min)")
    else:
        scope = f"{n:,} associations ({calls} calls)"
    lines = [
        f"Associations benchmark, {facts['date']}: nproc {facts['nproc']}, Python {facts['python']}, PostgreSQL "
        f"{facts['postgres']}; seed {args.seed}; load average (1/5/15 min) {facts['load_start']} at the start, "
        f"{facts['load_end']} at the end",
        "",
        f"1. Contact-company associations through the gateway, {args.per_batch:,} per `batch/associate/default` "
        f"call, one call at a time: {scope}; {n:,} contacts and {-(-n // args.fan):,} companies seeded beforehand in "
        f"{res.seed_seconds:.0f} s. Each association is stored as 2 rows (the pair and its inverse). Baselines "
        f"rewrite the same rows the API stored ({res.stored_rows:,}, including "
        + (f"{2 * res.topped_up:,} for the {res.topped_up:,} associations part 2 needed after the budget, and "
           if res.topped_up else "")
        + "40 from the 20 warm-up associations) into a scratch table in the same database",
        "",
        "| write | association rows | seconds | associations/s | p50 per call ms | p99 per call ms | "
        "API time / baseline time (same rows) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| API batch/associate/default | {2 * sent:,} | {res.associate_seconds:,.1f} | {api_rate:,.0f} | "
        f"{ms(res.associate.p(50))} | {ms(res.associate.p(99))} | - |",
    ]
    api_per_row = res.associate_seconds / (2 * sent)
    for b in res.baselines:
        lines.append(f"| baseline: {b.name} | {b.rows:,} | {b.seconds:,.2f} | {b.rows / 2 / b.seconds:,.0f} | - | - | "
                     f"{api_per_row / (b.seconds / b.rows):,.0f}x |")
    lat = res.associate.latencies
    if len(lat) >= 10:
        k = max(5, len(lat) // 5)
        lines += ["", f"Per call: the first {k} calls p50 {ms(pct(lat[:k], 50))} ms, the last {k} p50 "
                      f"{ms(pct(lat[-k:], 50))} ms (the associations table grows from 0 to {2 * sent:,} rows)."]
    lines += [
        "",
        f"While the API wrote (pg_stat_user_tables / pg_stat_database of records-svc's database): rows inserted "
        f"into associations {c.get('associations', 0):,.0f}, journal {c.get('journal', 0):,.0f}, outbox "
        f"{c.get('outbox', 0):,.0f}; {c['commits']:,.0f} commits; Postgres executing statements "
        f"{c['active_ms'] / 1000:,.1f} s of the {res.associate_seconds:,.1f} s "
        f"({c['active_ms'] / 1000 / res.associate_seconds:.0%}; the rest is records-svc, the gateway and the "
        f"round trips).",
        "",
        f"2. Reading a company with {args.fan:,} associated contacts through the gateway, {args.reads} of each, "
        f"interleaved (VACUUM ANALYZE of records and associations beforehand: {res.vacuum_seconds:.1f} s); the v4 "
        f"listing took {res.pages} pages",
        "",
        "| read | p50 ms | p99 ms | p50 / baseline p50 |",
        "|---|---:|---:|---:|",
    ]
    floor = next(iter(res.reads.values())).p(50)
    for kind, s in res.reads.items():
        lines.append(f"| {kind} | {ms(s.p(50))} | {ms(s.p(99))} | {s.p(50) / floor:.1f}x |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT / "libs" / "crm-common" / "src"))
    facts = machine_facts()
    suite = Suite.on_free_ports(tag=f"bench_assoc_{uuid.uuid4().hex[:6]}",
                                             extra_env={"CORRAL_LOG_LEVEL": "WARNING"})
    try:
        print(f"Booting the suite (logs in {suite.log_dir})...", flush=True)
        suite.migrate()
        suite.start()
        suite.wait_ready()
        token, account_id = suite.create_unlimited_token("bench-associations")
        res = asyncio.run(measure(args, suite, token, account_id))
    except BaseException:
        traceback.print_exc()
        print(f"benchmark failed; service logs are in {suite.log_dir}", file=sys.stderr)
        return 1
    finally:
        print("Stopping the suite and dropping its databases...", flush=True)
        suite.stop()
        suite.drop_databases()
    facts["load_end"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
    text = report(args, facts, res)
    print("\n" + text + "\n")
    print("EXPLAIN ANALYZE (the SQL records-svc runs, on the benchmark's data):\n")
    print(res.plans)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--associations", type=int, default=100_000, help="associations to create (default 100,000)")
    parser.add_argument("--per-batch", type=int, default=2000, help="inputs per batch call (API maximum 2,000)")
    parser.add_argument("--fan", type=int, default=1000, help="contacts per company (the read record's count)")
    parser.add_argument("--reads", type=int, default=100, help="reads of each kind in part 2")
    parser.add_argument("--budget", type=float, default=240.0,
                        help="seconds part 1 may take; it stops after the call that crosses it (0: no limit)")
    parser.add_argument("--seed", type=int, default=42)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
