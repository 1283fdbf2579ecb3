"""Duplicate suggestions benchmark: FEBRL 1-4 and a million generated contacts, through the API.

    uv run python bench/duplicates/bench_duplicates.py                       # FEBRL 1-4, then 1,000,000 contacts
    uv run python bench/duplicates/bench_duplicates.py --contacts 0          # FEBRL only (~3 min)
    uv run python bench/duplicates/bench_duplicates.py --febrl none --contacts 100000

Boots one private copy of the suite (free ports, throwaway databases dropped at the end). Per data set, in an
account of its own:

1. the records are loaded through the imports API (`POST /crm/v3/imports`, a CSV): FEBRL's fields become
   contact properties (given_name, surname, suburb, postcode, state, street number + address_1 as standard
   ones; date_of_birth, soc_sec_id, address_2 as custom string properties created first through the properties
   API) and the record key (FEBRL's rec_id) a custom property `bench_key` that nothing compares;
2. FEBRL sets: the matching settings are the contact defaults plus state (text), date of birth (date), social
   security id (identifier) and address 2 (address), set through `PUT /corral/v1/duplicates/settings/contacts`,
   the same for all four sets; the generated contacts use the defaults untouched. Threshold 0.9 everywhere,
   chosen before any run and never tuned;
3. a scan (`POST /corral/v1/duplicates/jobs`), timed until COMPLETE, with merge-svc's peak RSS (psutil, every
   0.25 s, the process and its children);
4. the suggestions read back (`GET /corral/v1/duplicates`, every page); precision, recall and F1 of the pairs
   the clusters imply (every pair inside a cluster), against the truth from the keys (FEBRL: `rec-12-org` ~
   `rec-12-dup-0` ~ `rec-12-dup-1`; generated: each planted duplicate ~ its original);
5. the in-run baseline: the exact first + last name rule (records with equal non-empty lower-cased first and
   last names form a cluster), on the same loaded records;
6. generated contacts only: `POST /corral/v1/duplicates/check` of new records (half planted near-duplicates,
   half new people) one at a time through the gateway, p50/p95, interleaved with a baseline of single-contact
   reads (`GET /crm/v3/objects/contacts/{id}`) through the gateway.

The generated set (seeded): 95% distinct people (first names from the `nicknames` table, last names built from
syllables, unique emails, phones, street addresses, cities, zips) and 5% planted duplicates of random originals
with one or two of: a typo in a name, first and last name swapped, a nickname, the phone written another way, the
street type abbreviated, the email dropped or another address (emails are unique per account), the zip missing.
Nothing here asserts a timing; the machine is shared with the suite and Postgres (and other work).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from corral_devtools.benchkit import DirectAuth, check, pct
from corral_devtools.suite import Suite

sys.path.insert(0, str(Path(__file__).resolve().parent))
import febrl  # noqa: E402

BIN = Path(sys.executable).parent
FEBRL_EXTRA = [{"name": "state", "kind": "text"}, {"name": "febrl_dob", "kind": "date"},
               {"name": "soc_sec_id", "kind": "identifier"}, {"name": "address_2", "kind": "address"}]
CUSTOM = ["bench_key", "febrl_dob", "soc_sec_id", "address_2"]


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                rss = self.process.memory_info().rss + sum(c.memory_info().rss
                                                           for c in self.process.children(recursive=True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.25)


# --- loading ----------------------------------------------------------------------------------------------


def create_properties(http: httpx.Client) -> None:
    for name in CUSTOM:
        response = http.post("/crm/v3/properties/contacts", json={
            "name": name, "label": name.replace("_", " ").title(), "type": "string", "fieldType": "text",
            "groupName": "contactinformation"})
        check(response, 201, 409)


def import_csv(http: httpx.Client, rows: list[dict[str, str]], columns: list[str]) -> float:
    """Load rows through the imports API; seconds taken."""
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        path = Path(fh.name)
    request = {"name": f"bench duplicates {path.name}", "importOperations": {"0-1": "CREATE"},
               "files": [{"fileName": path.name, "fileFormat": "CSV", "fileImportPage": {"hasHeader": True,
                          "columnMappings": [{"columnObjectTypeId": "0-1", "columnName": c, "propertyName": c}
                                             for c in columns]}}]}
    started = time.perf_counter()
    try:
        with path.open("rb") as upload:
            response = check(http.post("/crm/v3/imports/", data={"importRequest": json.dumps(request)},
                                       files=[("files", (path.name, upload, "text/csv"))]), 200)
        import_id = response.json()["id"]
        while True:
            status = http.get(f"/crm/v3/imports/{import_id}").json()
            if status["state"] in ("DONE", "FAILED", "CANCELED"):
                break
            time.sleep(1)
    finally:
        path.unlink(missing_ok=True)
    if status["state"] != "DONE":
        raise RuntimeError(f"import {import_id} ended {status['state']}: {status}")
    return time.perf_counter() - started


def keys_to_ids(direct: httpx.Client) -> dict[str, int]:
    """bench_key -> record id, read back through records-svc's export."""
    out: dict[str, int] = {}
    after = "0"
    while True:
        page = check(direct.get("/internal/v1/records/contacts/export",
                                params={"properties": "bench_key", "after": after, "limit": 20000}), 200).json()
        out.update({row[1]: int(row[0]) for row in page["results"] if row[1]})
        if not page.get("paging"):
            return out
        after = page["paging"]["next"]["after"]


# --- scanning and scoring -------------------------------------------------------------------------------


def scan(http: httpx.Client, pid: int) -> dict[str, Any]:
    sampler = PeakRss(pid)
    sampler.start()
    started = time.perf_counter()
    job = check(http.post("/corral/v1/duplicates/jobs", json={"objectType": "contacts"}), 202).json()
    phases: dict[str, float] = {}
    while job["status"] in ("PENDING", "RUNNING"):
        time.sleep(0.5)
        job = check(http.get(f"/corral/v1/duplicates/jobs/{job['id']}"), 200).json()
        if job.get("phase") and job["phase"] not in phases:
            phases[job["phase"]] = time.perf_counter() - started
    seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    if job["status"] != "COMPLETE":
        raise RuntimeError(f"scan failed: {job}")
    return {"seconds": seconds, "peak_mb": sampler.peak / 2**20, "progress": job["progress"], "phases": phases}


def suggested_clusters(http: httpx.Client) -> list[list[int]]:
    clusters: list[list[int]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"objectType": "contacts", "limit": 100}
        if after:
            params["after"] = after
        page = check(http.get("/corral/v1/duplicates", params=params), 200).json()
        clusters += [[int(i) for i in c["recordIds"]] for c in page["results"]]
        if not page.get("paging"):
            return clusters
        after = page["paging"]["next"]["after"]


def exact_name_clusters(rows: Iterable[dict[str, str]], ids: dict[str, int]) -> list[list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        first, last = row.get("firstname", "").strip().lower(), row.get("lastname", "").strip().lower()
        if first and last:
            groups.setdefault((first, last), []).append(ids[row["bench_key"]])
    return [g for g in groups.values() if len(g) > 1]


def score_line(found: list[list[int]], truth: set[tuple[int, int]]) -> tuple[float, float, float, int]:
    pairs = febrl.pairs_of_clusters(found)
    p, r, f = febrl.precision_recall_f1(pairs, truth)
    return p, r, f, len(pairs)


# --- FEBRL ----------------------------------------------------------------------------------------------


def febrl_rows(name: str) -> list[dict[str, str]]:
    rows = []
    for record in febrl.load(name):
        props = febrl.as_contact(record)
        props["febrl_dob"] = props.pop("date_of_birth", "")
        props["bench_key"] = record["rec_id"]
        rows.append(props)
    return rows


def run_febrl(suite: Suite, name: str) -> dict[str, Any]:
    token, account_id = suite.create_unlimited_token(f"bench-dups-{name.lower()}-{os.getpid()}")
    with httpx.Client(base_url=suite.gateway_url, headers={"authorization": f"Bearer {token}"}, timeout=600) as http, \
            httpx.Client(base_url=suite.url("records-svc"), auth=DirectAuth(account_id), timeout=600) as direct:
        create_properties(http)
        defaults = check(http.get("/corral/v1/duplicates/settings/contacts"), 200).json()
        check(http.put("/corral/v1/duplicates/settings/contacts", json={
            "properties": defaults["properties"] + FEBRL_EXTRA, "threshold": defaults["threshold"]}), 200)
        rows = febrl_rows(name)
        columns = ["bench_key", "firstname", "lastname", "address", "address_2", "city", "zip", "state",
                   "febrl_dob", "soc_sec_id"]
        load_seconds = import_csv(http, rows, columns)
        ids = keys_to_ids(direct)
        truth = febrl.true_pairs(ids)
        scanned = scan(http, suite.processes["merge-svc"].pid)
        found = suggested_clusters(http)
    return {"set": name, "records": len(rows), "true_pairs": len(truth), "load_s": load_seconds, **scanned,
            "ours": score_line(found, truth), "baseline": score_line(exact_name_clusters(rows, ids), truth)}


# --- generated contacts -------------------------------------------------------------------------------

SYLLABLES = ["an", "ber", "cal", "dor", "el", "fen", "gar", "hol", "is", "jan", "kel", "lor", "mar", "nor", "ol",
             "per", "quin", "ros", "sel", "tor", "ul", "ven", "wil", "xan", "yor", "zel", "berg", "son", "ton",
             "ley", "ford", "man", "ski", "ez", "ini", "ova", "sen", "stein", "wood", "field"]
STREETS = ["Street", "Road", "Avenue", "Lane", "Drive", "Court", "Place", "Boulevard"]
ABBREVIATED = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Lane": "Ln", "Drive": "Dr", "Court": "Ct",
               "Place": "Pl", "Boulevard": "Blvd"}


def _first_names() -> tuple[list[str], dict[str, list[str]]]:
    import nicknames
    from nicknames import NickNamer

    table = NickNamer()
    with (Path(nicknames.__file__).parent / "names.csv").open(encoding="utf-8") as fh:
        formal = sorted({row["name1"] for row in csv.DictReader(fh) if row["relationship"] == "has_nickname"})
    return formal, {n: sorted(table.nicknames_of(n)) for n in formal}


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word + rng.choice("aeiou")
    i = rng.randrange(1, len(word) - 1)
    match rng.randrange(3):
        case 0:
            return word[:i] + word[i + 1:]
        case 1:
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        case _:
            return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i + 1:]


def _phone_other_format(rng: random.Random, phone: str) -> str:
    digits = phone.replace("+1", "").replace(" ", "")
    return rng.choice([f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", f"{digits[:3]}.{digits[3:6]}.{digits[6:]}",
                       f"+1{digits}", f"1-{digits[:3]}-{digits[3:6]}-{digits[6:]}"])


def generated_contacts(n: int, seed: int) -> tuple[list[dict[str, str]], list[tuple[str, str]]]:
    rng = random.Random(seed)
    formal, nicks = _first_names()
    lasts = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randrange(2, 4))).title()
                    for _ in range(120_000)})
    cities = sorted({"".join(rng.choice(SYLLABLES) for _ in range(2)).title() + rng.choice(["ville", "ton", ""])
                     for _ in range(3_000)})
    duplicates = n // 20
    originals = n - duplicates
    rows: list[dict[str, str]] = []
    for i in range(originals):
        first, last = rng.choice(formal).title(), rng.choice(lasts)
        rows.append({"bench_key": f"o{i}", "firstname": first, "lastname": last,
                     "email": f"{first.lower()}.{last.lower()}.{i}@example{i % 97}.com",
                     "phone": f"+1 {rng.randrange(201, 989)} {rng.randrange(200, 999)} {rng.randrange(0, 10000):04d}",
                     "address": f"{rng.randrange(1, 9999)} {rng.choice(lasts)} {rng.choice(STREETS)}",
                     "city": rng.choice(cities), "zip": f"{rng.randrange(501, 99950):05d}"})
    truth: list[tuple[str, str]] = []
    for j in range(duplicates):
        original = rows[rng.randrange(originals)]
        twin = dict(original)
        twin["bench_key"] = f"d{j}"
        twin["email"] = "" if rng.random() < 0.6 else f"{twin['firstname'].lower()}{j}@mail{j % 13}.net"
        for change in rng.sample(range(7), rng.randrange(1, 3)):
            match change:
                case 0:
                    twin["firstname"] = _typo(rng, twin["firstname"])
                case 1:
                    twin["lastname"] = _typo(rng, twin["lastname"])
                case 2:
                    twin["firstname"], twin["lastname"] = twin["lastname"], twin["firstname"]
                case 3:
                    options = nicks.get(original["firstname"].lower())
                    if options:
                        twin["firstname"] = rng.choice(options).title()
                case 4:
                    twin["phone"] = _phone_other_format(rng, twin["phone"])
                case 5:
                    number, *street, kind = twin["address"].split(" ")
                    twin["address"] = " ".join([number, *street, ABBREVIATED.get(kind, kind)])
                case 6:
                    twin["zip"] = ""
        rows.append(twin)
        truth.append((twin["bench_key"], original["bench_key"]))
    return rows, truth


def run_generated(suite: Suite, n: int, checks: int, seed: int) -> dict[str, Any]:
    token, account_id = suite.create_unlimited_token(f"bench-dups-generated-{os.getpid()}")
    rows, truth_keys = generated_contacts(n, seed)
    with httpx.Client(base_url=suite.gateway_url, headers={"authorization": f"Bearer {token}"}, timeout=900) as http, \
            httpx.Client(base_url=suite.url("records-svc"), auth=DirectAuth(account_id), timeout=900) as direct:
        check(http.post("/crm/v3/properties/contacts", json={
            "name": "bench_key", "label": "Bench key", "type": "string", "fieldType": "text",
            "groupName": "contactinformation"}), 201, 409)
        load_seconds = import_csv(http, rows, ["bench_key", "firstname", "lastname", "email", "phone", "address",
                                               "city", "zip"])
        ids = keys_to_ids(direct)
        truth = {tuple(sorted((ids[a], ids[b]))) for a, b in truth_keys}  # type: ignore[misc]
        scanned = scan(http, suite.processes["merge-svc"].pid)
        found = suggested_clusters(http)
        ours = score_line(found, truth)  # type: ignore[arg-type]
        baseline = score_line(exact_name_clusters(rows, ids), truth)  # type: ignore[arg-type]

        rng = random.Random(seed + 1)
        fresh, _ = generated_contacts(checks, seed + 2)
        probes = []
        for k in range(checks):
            if k % 2:
                twin = dict(rows[rng.randrange(len(rows))])
                twin["firstname"] = _typo(rng, twin["firstname"])
                twin.pop("email", None)
                probes.append(twin)
            else:
                probes.append(fresh[k])
        some_ids = rng.sample(sorted(ids.values()), min(checks, len(ids)))
        check_ms, read_ms, hits = [], [], 0
        for probe, record_id in zip(probes, itertools.cycle(some_ids), strict=False):
            started = time.perf_counter()
            response = check(http.post("/corral/v1/duplicates/check", json={
                "objectType": "contacts", "properties": {k: v for k, v in probe.items() if k != "bench_key"}}), 200)
            check_ms.append((time.perf_counter() - started) * 1000)
            hits += bool(response.json()["results"])
            started = time.perf_counter()
            check(http.get(f"/crm/v3/objects/contacts/{record_id}"), 200)
            read_ms.append((time.perf_counter() - started) * 1000)
    return {"records": n, "true_pairs": len(truth), "load_s": load_seconds, **scanned, "ours": ours,
            "baseline": baseline, "check_p50": pct(check_ms, 50), "check_p95": pct(check_ms, 95),
            "read_p50": pct(read_ms, 50), "read_p95": pct(read_ms, 95), "check_hits": hits, "checks": checks}


# --- report ---------------------------------------------------------------------------------------------


def report(febrl_results: list[dict[str, Any]], generated: dict[str, Any] | None, started: str) -> str:
    load = os.getloadavg()
    lines = [f"Duplicate suggestions benchmark, {started}: nproc {os.cpu_count()}, load average "
             f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at the end (the machine is shared)", ""]
    if febrl_results:
        lines += ["| set | records | true pairs | precision | recall | F1 | pairs suggested | exact first+last name: "
                  "P / R / F1 | scan s | merge-svc peak MB |", "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in febrl_results:
            p, rc, f, n = r["ours"]
            bp, br, bf, _ = r["baseline"]
            lines.append(f"| {r['set']} | {r['records']:,} | {r['true_pairs']:,} | {p:.4f} | {rc:.4f} | **{f:.4f}** | "
                         f"{n:,} | {bp:.3f} / {br:.3f} / {bf:.3f} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} |")
        lines.append("")
    if generated:
        g = generated
        p, rc, f, n = g["ours"]
        bp, br, bf, _ = g["baseline"]
        phases = ", ".join(f"{k} at {v:.0f} s" for k, v in g["phases"].items())
        lines += [f"Generated contacts: {g['records']:,} ({g['true_pairs']:,} planted duplicate pairs), loaded through "
                  f"the imports API in {g['load_s']:.0f} s",
                  "", "| measure | value |", "|---|---:|",
                  f"| scan time (POST job to COMPLETE) | {g['seconds']:.0f} s ({phases}) |",
                  f"| merge-svc peak RSS during the scan | {g['peak_mb']:,.0f} MB |",
                  f"| candidate pairs scored | {g['progress'].get('candidatePairs', 0):,} |",
                  f"| precision / recall / F1 | {p:.4f} / {rc:.4f} / **{f:.4f}** ({n:,} pairs) |",
                  f"| exact first+last name rule: precision / recall / F1 | {bp:.4f} / {br:.4f} / {bf:.4f} |",
                  f"| check before create, p50 / p95 ({g['checks']} calls, {g['check_hits']} with a match) | "
                  f"{g['check_p50']:.1f} / {g['check_p95']:.1f} ms |",
                  f"| baseline: GET one contact, p50 / p95 | {g['read_p50']:.1f} / {g['read_p95']:.1f} ms |",
                  f"| check p95 / GET p95 | {g['check_p95'] / g['read_p95']:.1f}x |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--febrl", default="FEBRL1,FEBRL2,FEBRL3,FEBRL4", help="sets to run, or 'none'")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="generated contacts (0: skip)")
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    suite = Suite.on_free_ports(tag=f"bench_dups_{os.getpid()}", extra_env={"CORRAL_LOG_LEVEL": "WARNING"})
    suite.migrate()
    suite.start(with_emulator=False)
    try:
        suite.wait_ready()
        febrl_results = []
        for name in [] if args.febrl == "none" else args.febrl.split(","):
            febrl_results.append(run_febrl(suite, name))
            print(f"{name}: done", flush=True)
        generated = run_generated(suite, args.contacts, args.checks, args.seed) if args.contacts else None
        print(report(febrl_results, generated, started))
    finally:
        suite.stop()
        suite.drop_databases()


if __name__ == "__main__":
    main()
