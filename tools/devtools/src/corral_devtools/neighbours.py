"""A noisy neighbour and the account next to it, through the gateway: the e2e test asserts that every call of
the quiet account succeeds while the noisy one runs, and bench/gateway/bench_noisy_neighbour.py measures the
quiet account's latency with and without it.

The noisy account sends what issue 16 found breaking the services (ids out of range, NUL and unpaired
surrogates in bodies, paths and queries, huge type ids, malformed JSON), big uploads (a raw vCard body past
its limit, a 49-megapixel QR photo, an XLSX with a 2 MB cell, a 20,000-row CSV import of bad rows) and a
poisoned import (a NUL in a cell, invalid emails, a Record ID of '²'), over and over.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import orjson

CONTACTS = "/crm/v3/objects/contacts"


def _bad_requests() -> list[tuple[str, str, dict[str, object]]]:
    json_type = {"content-type": "application/json"}
    big = "9" * 30
    return [
        ("GET", f"{CONTACTS}/{big}", {}),
        ("GET", f"{CONTACTS}/9223372036854775808", {}),
        ("GET", f"{CONTACTS}/%C2%B2", {}),
        ("PATCH", f"{CONTACTS}/%C2%B2", {"json": {"properties": {"firstname": "x"}}}),
        ("GET", f"{CONTACTS}?after=99999999999999999999", {}),
        ("POST", f"{CONTACTS}/search", {"json": {"after": "99999999999999999999"}}),
        ("GET", "/crm/v4/objects/contacts/1/associations/companies?after=99999999999999999999", {}),
        ("GET", "/crm/v3/imports?after=99999999999999999999", {}),
        ("POST", CONTACTS, {"content": b'{"properties": {"email": "n@x.example", "firstname": "a\\u0000b"}}',
                            "headers": json_type}),
        ("POST", CONTACTS, {"content": b'{"properties": {"firstname": "a\\ud800b"}}', "headers": json_type}),
        ("POST", f"{CONTACTS}/search", {"content": b'{"query": "\\ud800"}', "headers": json_type}),
        ("GET", f"/crm/v3/objects/2-{big}", {}),
        ("PUT", "/crm/v4/objects/contacts/1/associations/companies/2",
         {"json": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 2**70}]}),
        ("PUT", "/corral/v1/merges/rules/contacts/a%00b", {"json": {"strategy": "PRIMARY"}}),
        ("POST", "/corral/v1/capture/business-card/confirm",
         {"content": b'{"properties": {"firstname": "\\u0000"}}', "headers": json_type}),
        ("POST", "/corral/v1/capture/business-card/confirm",
         {"json": {"properties": {"email": "p@x.example", "lifecyclestage": "pwned"}}}),
        ("POST", "/crm-object-schemas/v3/schemas", {"json": {"name": "x" * 1000, "labels": {"singular": "X",
                                                                                             "plural": "Xs"}}}),
        ("POST", CONTACTS, {"content": b'{"properties": {', "headers": json_type}),
        ("POST", f"{CONTACTS}/search/", {"json": {}}),
    ]


def xlsx_with_long_cell(chars: int = 2 * 1024 * 1024) -> bytes:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="http://schemas.openxmlformats.org/'
                         'officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/>'
                         '</sheets></workbook>')
        archive.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/'
                         'package/2006/relationships"><Relationship Id="rId1" Target="worksheets/sheet1.xml" '
                         'Type="x"/></Relationships>')
        archive.writestr("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{main}"><sheetData><row r="1">'
                         '<c r="A1" t="inlineStr"><is><t>Email</t></is></c></row><row r="2"><c r="A2" '
                         f't="inlineStr"><is><t>{"x" * chars}</t></is></c></row></sheetData></worksheet>')
    return buffer.getvalue()


def white_png(side: int = 7_000) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (side, side), 255).save(buffer, "PNG")
    return buffer.getvalue()


def import_request(file_name: str, *, record_id: bool = False, file_format: str = "CSV") -> str:
    mappings = [{"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
                {"columnObjectTypeId": "0-1", "columnName": "First", "propertyName": "firstname"}]
    if record_id:
        mappings.append({"columnObjectTypeId": "0-1", "columnName": "Record ID", "propertyName": "hs_object_id"})
    return orjson.dumps({"name": file_name, "files": [{"fileName": file_name, "fileFormat": file_format,
                                                       "fileImportPage": {"hasHeader": True,
                                                                          "columnMappings": mappings}}]}).decode()


def poisoned_csv() -> bytes:
    rows = ["Email,First,Record ID", "ok@poison.example,Fine,", "nul@poison.example,a\x00b,", "not-an-email,X,",
            "sq@poison.example,Y,²"]
    return ("\n".join(rows * 200) + "\n").encode()


def bad_rows_csv(rows: int = 20_000) -> bytes:
    return ("Email,First\n" + "".join(f"bad-{i}-at-nowhere,N{i}\n" for i in range(rows))).encode()


@dataclass
class Noise:
    """What the noisy account sent, by kind and answer status."""

    sent: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)


async def noisy_neighbour(http: httpx.AsyncClient, stop: asyncio.Event, noise: Noise) -> None:
    """Bad requests, big uploads and poisoned imports from one account until `stop` is set."""
    png, xlsx = await asyncio.gather(asyncio.to_thread(white_png), asyncio.to_thread(xlsx_with_long_cell))
    bad = _bad_requests()

    async def record(kind: str, call: Awaitable[httpx.Response]) -> None:
        try:
            response = await call
            noise.sent[f"{kind} {response.status_code}"] += 1
            if response.status_code >= 500:
                noise.server_errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
        except httpx.HTTPError as exc:
            noise.sent[f"{kind} {type(exc).__name__}"] += 1

    async def raw_vcards() -> httpx.Response:
        async def body():  # type: ignore[no-untyped-def]
            for _ in range(30):
                yield b"BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n" * 30_000  # ~0.9 MB a chunk
        return await http.post("/corral/v1/capture/vcards", content=body(), headers={"content-type": "text/vcard"})

    uploads: list[tuple[str, Callable[[], Awaitable[httpx.Response]]]] = [
        ("raw vCard body past 20 MB", raw_vcards),
        ("49-megapixel QR photo", lambda: http.post("/corral/v1/capture/qr/image",
                                                   files={"image": ("qr.png", png, "image/png")})),
        ("XLSX with a 2 MB cell", lambda: http.post("/crm/v3/imports", data={
            "importRequest": import_request("cell.xlsx", file_format="SPREADSHEET")},
            files={"files": ("cell.xlsx", xlsx, "application/octet-stream")})),
        ("20,000-row import of bad rows", lambda: http.post("/crm/v3/imports", data={
            "importRequest": import_request("bad.csv")}, files={"files": ("bad.csv", bad_rows_csv(), "text/csv")})),
        ("poisoned import", lambda: http.post("/crm/v3/imports", data={
            "importRequest": import_request("poison.csv", record_id=True)},
            files={"files": ("poison.csv", poisoned_csv(), "text/csv")})),
    ]

    async def requests_loop() -> None:
        while not stop.is_set():
            method, path, options = random.choice(bad)
            await record("bad request", http.request(method, path, **options))  # type: ignore[arg-type]

    async def uploads_loop() -> None:
        turn = 0
        while not stop.is_set():
            kind, call = uploads[turn % len(uploads)]
            turn += 1
            await record(kind, call())

    await asyncio.gather(requests_loop(), requests_loop(), uploads_loop())


@dataclass
class Calls:
    """The quiet account's calls: latency by operation, and every answer that was not a success."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def all_latencies(self) -> list[float]:
        return [v for values in self.latencies.values() for v in values]


async def quiet_account(http: httpx.AsyncClient, *, rounds: int, calls: Calls) -> None:
    """Everyday calls of another account: create, read, update, search, batch upsert, list, associate."""
    tag = uuid.uuid4().hex[:8]

    async def timed(name: str, method: str, path: str, expected: int, **options: object) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await http.request(method, path, **options)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            calls.failures.append(f"{name}: {exc!r}")
            return None
        calls.latencies.setdefault(name, []).append(time.perf_counter() - started)
        if response.status_code != expected:
            calls.failures.append(f"{name}: {response.status_code} {response.text[:300]}")
            return None
        return response

    company = await timed("create company", "POST", "/crm/v3/objects/companies", 201,
                          json={"properties": {"name": f"Quiet {tag}", "domain": f"quiet-{tag}.example"}})
    for i in range(rounds):
        created = await timed("create", "POST", CONTACTS, 201,
                              json={"properties": {"email": f"q{i}-{tag}@quiet.example", "firstname": f"Q{i}"}})
        if created is None:
            continue
        record_id = created.json()["id"]
        await timed("read", "GET", f"{CONTACTS}/{record_id}", 200)
        await timed("update", "PATCH", f"{CONTACTS}/{record_id}", 200, json={"properties": {"lastname": "Quiet"}})
        await timed("search", "POST", f"{CONTACTS}/search", 200, json={"filterGroups": [{"filters": [
            {"propertyName": "email", "operator": "EQ", "value": f"q{i}-{tag}@quiet.example"}]}]})
        await timed("batch upsert", "POST", f"{CONTACTS}/batch/upsert", 200, json={"inputs": [
            {"id": f"b{i}-{j}-{tag}@quiet.example", "idProperty": "email", "properties": {"firstname": "B"}}
            for j in range(10)]})
        await timed("list", "GET", f"{CONTACTS}?limit=10", 200)
        if company is not None:
            await timed("associate", "PUT", f"/crm/v4/objects/contacts/{record_id}/associations/default/companies/"
                                            f"{company.json()['id']}", 200)
