"""`corral`: drive Corral's public API from a terminal or a script.

Reads CORRAL_URL (default http://127.0.0.1:8080) and CORRAL_TOKEN. Every failure prints one line saying what
went wrong to stderr and exits non-zero. In a terminal, long work shows a live progress bar; in a pipe it
prints plain lines, and `--json` prints the API's answer for scripts.
"""

from __future__ import annotations

import json
import mimetypes
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from corral_cli.client import Api, CorralError
from corral_cli.progress import ImportProgress, counters_of

app = typer.Typer(
    name="corral",
    help=__doc__.split("\n\n")[0],
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain usage errors (click's): a boxed panel cuts long paths at the terminal's width.
    rich_markup_mode=None,
)
imports_app = typer.Typer(help="Imports: list, status, cancel, revert, errors", no_args_is_help=True)
duplicates_app = typer.Typer(
    help="Duplicate suggestions: scan an object type, list what was found", no_args_is_help=True
)
sync_app = typer.Typer(help="Salesforce sync: status, run now, errors", no_args_is_help=True)
token_app = typer.Typer(
    help="Access tokens (straight against the gateway's database, like corral-admin)", no_args_is_help=True
)
app.add_typer(imports_app, name="imports")
app.add_typer(duplicates_app, name="duplicates")
app.add_typer(sync_app, name="sync")
app.add_typer(token_app, name="token")

# No markup or highlighting: names, values and messages are printed as they are ("[correlationId ...]" too).
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)

FINAL_IMPORT_STATES = {"DONE", "FAILED", "CANCELED", "REVERTED"}
FINAL_SCAN_STATES = {"COMPLETE", "FAILED", "CANCELED"}
OPERATIONS = ("CREATE", "UPDATE", "UPSERT")


class Options:
    def __init__(self, url: str | None, token: str | None, as_json: bool) -> None:
        self.url, self.token, self.as_json = url, token, as_json

    def api(self) -> Api:
        return Api(self.url, self.token)


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Gateway URL (default: $CORRAL_URL, else http://127.0.0.1:8080)"),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Access token (default: $CORRAL_TOKEN)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON answer (for scripts)")
    ] = False,
) -> None:
    ctx.obj = Options(url, token, as_json)


@contextmanager
def api_of(ctx: typer.Context) -> Iterator[Api]:
    api = ctx.obj.api()
    try:
        yield api
    finally:
        api.close()


def emit_json(value: Any) -> None:
    out.print_json(json.dumps(value)) if out.is_terminal else print(json.dumps(value, indent=2))


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], title: str | None = None) -> None:
    """A table in a terminal; tab-separated lines with a header in a pipe (easy to cut and awk)."""
    if not out.is_terminal:
        print("\t".join(label for label, _ in columns))
        for row in rows:
            print("\t".join(str(row.get(key, "")) for _, key in columns))
        return
    grid = Table(title=title)
    for label, _ in columns:
        grid.add_column(label)
    for row in rows:
        grid.add_row(*(str(row.get(key, "")) for _, key in columns))
    out.print(grid)


def key_values(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        out.print(f"{key.ljust(width)}  {value}")


# ---- imports ---------------------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    return "SPREADSHEET" if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".xlsb", ".ods") else "CSV"


# The preview reads the header and the first rows only: of a large CSV, only its first lines are sent.
PREVIEW_HEAD_BYTES = 256 * 1024


def preview_sample(path: Path) -> bytes | None:
    """The first whole lines of a large CSV; None to send the file itself (small, or a spreadsheet)."""
    if file_format(path) != "CSV" or path.stat().st_size <= PREVIEW_HEAD_BYTES:
        return None
    with path.open("rb") as handle:
        head = handle.read(PREVIEW_HEAD_BYTES)
    return head[: head.rfind(b"\n") + 1] or head


def suggested_mapping(api: Api, path: Path, object_type: str) -> dict[str, Any]:
    mime = mimetypes.guess_type(path.name)[0] or "text/csv"
    sample = preview_sample(path)
    with path.open("rb") as handle:
        preview = api.json(
            "POST",
            "/corral/v1/imports/preview",
            data={"objectType": object_type},
            files={"file": (path.name, sample if sample is not None else handle, mime)},
        )
    mapped = [m for m in preview["columnMappings"] if not m.get("ignored")]
    if not mapped:
        columns = ", ".join(c["columnName"] for c in preview["columns"])
        raise CorralError(
            f"no column of {path.name} matches a {object_type} property (columns: {columns}); "
            f"pass --mapping FILE.json"
        )
    skipped = [m["columnName"] for m in preview["columnMappings"] if m.get("ignored")]
    pairs = ", ".join(f"{m['columnName']} -> {m['propertyName']}" for m in mapped)
    err.print(f"Mapping: {pairs}" + (f"; not imported: {', '.join(skipped)}" if skipped else ""))
    return preview


def explicit_mapping(source: Path) -> list[dict[str, Any]]:
    try:
        loaded = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorralError(f"cannot read the mapping {source}: {exc}") from None
    mappings = loaded.get("columnMappings") if isinstance(loaded, dict) else loaded
    if not isinstance(mappings, list) or not all(isinstance(m, dict) for m in mappings):
        raise CorralError(
            f"{source} must hold a JSON list of HubSpot columnMappings (or an object with `columnMappings`)"
        )
    return mappings


@app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="CSV or spreadsheet to import", exists=True, dir_okay=False, readable=True
        ),
    ],
    object_type: Annotated[
        str,
        typer.Option(
            "--object",
            help="Object type of the rows: contacts, companies, deals, tickets, a custom object...",
        ),
    ] = "contacts",
    mapping: Annotated[
        str,
        typer.Option(
            help="`auto` (columns matched to properties by import-svc) or a JSON "
            "file of HubSpot columnMappings"
        ),
    ] = "auto",
    name: Annotated[str | None, typer.Option(help="Import name (default: the file's name)")] = None,
    operation: Annotated[str, typer.Option(help="CREATE, UPDATE or UPSERT")] = "UPSERT",
    date_format: Annotated[
        str | None,
        typer.Option(
            help="MONTH_DAY_YEAR, DAY_MONTH_YEAR or YEAR_MONTH_DAY (default: guessed from the first rows)"
        ),
    ] = None,
    errors_file: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the rows refused (default: <file>.import-<id>-errors.csv beside the file)"
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the import until it ends")] = True,
) -> None:
    """Upload FILE through the gateway and follow the import to its end with a live progress bar."""
    operation = operation.upper()
    if operation not in OPERATIONS:
        raise CorralError(f"--operation must be one of {', '.join(OPERATIONS)}")
    with api_of(ctx) as api:
        if mapping == "auto":
            preview = suggested_mapping(api, file, object_type)
            mappings, type_ids = preview["columnMappings"], preview["objectTypeIds"]
            date_format = date_format or preview.get("dateFormat")
            fmt = preview.get("fileFormat") or file_format(file)
        else:
            mappings = explicit_mapping(Path(mapping))
            type_ids = sorted({m["columnObjectTypeId"] for m in mappings if m.get("columnObjectTypeId")})
            fmt = file_format(file)
        request: dict[str, Any] = {
            "name": name or file.name,
            "importOperations": {type_id: operation for type_id in type_ids},
            "files": [
                {
                    "fileName": file.name,
                    "fileFormat": fmt,
                    "fileImportPage": {"hasHeader": True, "columnMappings": mappings},
                }
            ],
        }
        if date_format:
            request["dateFormat"] = date_format
        with file.open("rb") as handle:
            started = api.json(
                "POST",
                "/crm/v3/imports",
                data={"importRequest": json.dumps(request)},
                files=[("files", (file.name, handle, mimetypes.guess_type(file.name)[0] or "text/csv"))],
            )
        import_id = started["id"]
        err.print(f"Import {import_id} started ({counters_of(started).get('TOTAL_ROWS', 0):,} rows).")
        if not wait:
            emit_json(started) if ctx.obj.as_json else print(import_id)
            return
        final = follow_import(api, import_id, total=counters_of(started).get("TOTAL_ROWS", 0))
        report_import(
            ctx, api, final, errors_file or file.with_name(f"{file.stem}.import-{import_id}-errors.csv")
        )


def follow_import(api: Api, import_id: str, *, total: int, interval: float = 0.5) -> dict[str, Any]:
    """Polls the import until it ends: a progress bar in a terminal, a line every 10 s otherwise."""
    progress = ImportProgress(err, import_id, total)
    interrupted = False

    def stop_following(*_: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, stop_following)
    try:
        with progress:
            while True:
                status = api.json("GET", f"/crm/v3/imports/{import_id}")
                progress.update(status)
                if status["state"] in FINAL_IMPORT_STATES:
                    return status
                if interrupted:
                    raise CorralError(
                        f"stopped following import {import_id}; it goes on on the server "
                        f"(`corral imports status {import_id}`, `corral imports cancel {import_id}`)"
                    )
                time.sleep(interval)
    finally:
        signal.signal(signal.SIGINT, previous)


def report_import(ctx: typer.Context, api: Api, status: dict[str, Any], errors_path: Path) -> None:
    counters = counters_of(status)
    refused = counters.get("ROWS_WITH_ERRORS", 0)
    written = None
    if refused:
        api.download(f"/corral/v1/imports/{status['id']}/errors.csv", errors_path)
        written = errors_path
    if ctx.obj.as_json:
        emit_json({**status, **({"errorsFile": str(written)} if written else {})})
    else:
        key_values(
            [
                ("Import", f"{status['id']} {status.get('importName', '')}".strip()),
                (
                    "State",
                    status["state"]
                    + (f" ({status['failureReason']})" if status.get("failureReason") else ""),
                ),
                ("Rows", f"{counters.get('ROWS_PROCESSED', 0):,} of {counters.get('TOTAL_ROWS', 0):,}"),
                ("Created", f"{counters.get('CREATED_OBJECTS', 0):,}"),
                ("Updated", f"{counters.get('UPDATED_OBJECTS', 0):,}"),
                ("Unchanged", f"{counters.get('UNCHANGED_OBJECTS', 0):,}"),
                ("Rows with errors", f"{refused:,}" + (f" (written to {written})" if written else "")),
            ]
        )
    if status["state"] != "DONE":
        raise CorralError(
            f"import {status['id']} ended {status['state']}"
            + (f": {status['failureReason']}" if status.get("failureReason") else "")
        )


@imports_app.command("list")
def imports_list(ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """The most recent imports, newest first."""
    with api_of(ctx) as api:
        body = api.json("GET", "/crm/v3/imports", params={"limit": limit})
    if ctx.obj.as_json:
        emit_json(body)
        return
    rows = []
    for item in body.get("results", []):
        counters = counters_of(item)
        rows.append(
            {
                "id": item["id"],
                "state": item["state"],
                "name": item.get("importName", ""),
                "created": item.get("createdAt", ""),
                "rows": f"{counters.get('ROWS_PROCESSED', 0)}/{counters.get('TOTAL_ROWS', 0)}",
                "errors": counters.get("ROWS_WITH_ERRORS", 0),
            }
        )
    table(
        rows,
        [
            ("ID", "id"),
            ("State", "state"),
            ("Name", "name"),
            ("Created", "created"),
            ("Rows", "rows"),
            ("Errors", "errors"),
        ],
        title="Imports",
    )


@imports_app.command("status")
def imports_status(
    ctx: typer.Context,
    import_id: Annotated[str, typer.Argument(metavar="ID")],
    wait: Annotated[bool, typer.Option(help="Follow it until it ends")] = False,
) -> None:
    """An import's state and counters (with --wait, a live progress bar until it ends)."""
    with api_of(ctx) as api:
        status = api.json("GET", f"/crm/v3/imports/{import_id}")
        if wait and status["state"] not in FINAL_IMPORT_STATES:
            status = follow_import(api, import_id, total=counters_of(status).get("TOTAL_ROWS", 0))
    if ctx.obj.as_json:
        emit_json(status)
        return
    counters = counters_of(status)
    key_values(
        [
            ("Import", f"{status['id']} {status.get('importName', '')}".strip()),
            ("State", status["state"]),
            *[(k.replace("_", " ").capitalize(), f"{v:,}") for k, v in sorted(counters.items())],
            *([("Failure", status["failureReason"])] if status.get("failureReason") else []),
        ]
    )


@imports_app.command("cancel")
def imports_cancel(ctx: typer.Context, import_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel an import that has not ended."""
    with api_of(ctx) as api:
        api.request("POST", f"/crm/v3/imports/{import_id}/cancel")
        status = api.json("GET", f"/crm/v3/imports/{import_id}")
    emit_json(status) if ctx.obj.as_json else print(f"Import {import_id}: {status['state']}")


@imports_app.command("revert")
def imports_revert(ctx: typer.Context, import_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Delete what an ended import created and restore what it overwrote."""
    with api_of(ctx) as api:
        body = api.json("POST", f"/crm/v3/imports/{import_id}/revert")
    if ctx.obj.as_json:
        emit_json(body)
        return
    revert = body.get("revert") or {}
    pairs = [("Import", import_id), ("State", body.get("state", ""))]
    pairs += [(str(k), json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in revert.items()]
    key_values(pairs)


@imports_app.command("errors")
def imports_errors(
    ctx: typer.Context,
    import_id: Annotated[str, typer.Argument(metavar="ID")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the error file (CSV) here")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Errors shown")] = 100,
) -> None:
    """An import's refused rows: shown, or the whole error file written with --output."""
    with api_of(ctx) as api:
        if output is not None:
            size = api.download(f"/corral/v1/imports/{import_id}/errors.csv", output)
            err.print(f"Wrote {output} ({size:,} bytes)")
            return
        body = api.json(
            "GET",
            f"/crm/v3/imports/{import_id}/errors",
            params={"limit": limit, "includeErrorMessage": "true"},
        )
    if ctx.obj.as_json:
        emit_json(body)
        return
    rows = [
        {
            "line": (e.get("sourceData") or {}).get("lineNumber", ""),
            "type": e.get("errorType", ""),
            "column": e.get("knownColumnNumber", ""),
            "value": e.get("invalidValue", ""),
            "message": e.get("errorMessage", ""),
        }
        for e in body.get("results", [])
    ]
    table(
        rows,
        [
            ("Line", "line"),
            ("Error", "type"),
            ("Column", "column"),
            ("Value", "value"),
            ("Message", "message"),
        ],
        title=f"Errors of import {import_id}",
    )


# ---- duplicates ------------------------------------------------------------------------------------------


@duplicates_app.command("scan")
def duplicates_scan(
    ctx: typer.Context,
    object_type: Annotated[str, typer.Option("--object", help="Object type to scan")] = "contacts",
    wait: Annotated[bool, typer.Option(help="Follow the scan until it ends")] = True,
) -> None:
    """Start a duplicate scan of an object type and follow it."""
    with api_of(ctx) as api:
        job = api.json("POST", "/corral/v1/duplicates/jobs", json={"objectType": object_type})
        err.print(f"Duplicate scan {job['id']} of {job.get('objectType', object_type)} started.")
        if wait:
            with err.status("Scanning...") if err.is_terminal else _nothing() as spinner:
                while job["status"] not in FINAL_SCAN_STATES:
                    time.sleep(0.5)
                    job = api.json("GET", f"/corral/v1/duplicates/jobs/{job['id']}")
                    if spinner is not None:
                        spinner.update(
                            f"Scanning: {job.get('phase') or job['status']} "
                            f"{_progress_text(job.get('progress') or {})}"
                        )
    if ctx.obj.as_json:
        emit_json(job)
    else:
        key_values(
            [
                ("Scan", job["id"]),
                ("Status", job["status"]),
                *[(str(k), v) for k, v in (job.get("progress") or {}).items()],
                *([("Error", job["error"])] if job.get("error") else []),
            ]
        )
    if job["status"] == "FAILED":
        raise CorralError(f"duplicate scan {job['id']} failed: {job.get('error') or 'no reason given'}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _progress_text(progress: dict[str, Any]) -> str:
    read, total = progress.get("recordsRead"), progress.get("recordsTotal")
    return f"{read:,}/{total:,} records" if isinstance(read, int) and isinstance(total, int) else ""


@duplicates_app.command("list")
def duplicates_list(
    ctx: typer.Context,
    object_type: Annotated[str, typer.Option("--object", help="Object type")] = "contacts",
    min_score: Annotated[float, typer.Option(min=0, max=1)] = 0.0,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """Suggested duplicates: groups of records that are likely the same, best first."""
    with api_of(ctx) as api:
        body = api.json(
            "GET",
            "/corral/v1/duplicates",
            params={"objectType": object_type, "minScore": min_score, "limit": limit},
        )
    if ctx.obj.as_json:
        emit_json(body)
        return
    rows = [
        {
            "id": c["id"],
            "records": ", ".join(c.get("recordIds", [])),
            "score": f"{c.get('score', 0):.3f}",
            "matched": ", ".join(sorted({k for p in c.get("pairs", []) for k in (p.get("matchedOn") or {})})),
        }
        for c in body.get("results", [])
    ]
    table(
        rows,
        [("ID", "id"), ("Records", "records"), ("Score", "score"), ("Matched on", "matched")],
        title=f"Duplicate {object_type}",
    )


# ---- Salesforce sync -------------------------------------------------------------------------------------


@sync_app.command("status")
def sync_status(ctx: typer.Context) -> None:
    """Whether the sync runs, its last cycle, queued changes, API calls against the day's budget, errors."""
    with api_of(ctx) as api:
        body = api.json("GET", "/corral/v1/salesforce/sync/status")
    if ctx.obj.as_json or not isinstance(body, dict):
        emit_json(body)
        return
    calls = body.get("apiCalls") or {}
    budget = calls.get("dailyBudget")
    used = calls.get("last24h", 0)
    pairs: list[tuple[str, Any]] = [
        (
            "State",
            body.get("state", "") + (f" ({body['suspendedReason']})" if body.get("suspendedReason") else ""),
        ),
        ("Started", body.get("startedAt") or "-"),
        ("Last cycle", body.get("lastCycleAt") or "-"),
        ("Queued changes", f"{body.get('queuedChanges', 0):,}"),
        (
            "API calls (24 h)",
            f"{used:,}" + (f" of {budget:,} ({used / budget:.0%})" if budget else " (no cap)"),
        ),
        ("Open errors", ", ".join(f"{k} {v}" for k, v in (body.get("errors") or {}).items() if v) or "none"),
    ]
    key_values(pairs)
    objects = [
        {
            "object": o.get("objectType"),
            "salesforce": o.get("salesforceObject"),
            "enabled": "yes" if o.get("enabled") else "no",
            "polled": o.get("lastPolledAt") or "-",
            "queued": o.get("queuedChanges", 0),
            "linked": o.get("linkedRecords", 0),
        }
        for o in body.get("objects") or []
    ]
    if objects:
        table(
            objects,
            [
                ("Object", "object"),
                ("Salesforce", "salesforce"),
                ("Enabled", "enabled"),
                ("Last polled", "polled"),
                ("Queued", "queued"),
                ("Linked", "linked"),
            ],
            title="Objects",
        )


@sync_app.command("run")
def sync_run(ctx: typer.Context) -> None:
    """Run a sync cycle now instead of waiting for the next one; prints what it did."""
    with api_of(ctx) as api:
        body = api.json("POST", "/corral/v1/salesforce/sync/run")
    if ctx.obj.as_json or not isinstance(body, dict):
        emit_json(body)
        return
    key_values(
        [
            ("API calls", body.get("apiCalls", 0)),
            *([("Skipped", body["skipped"])] if body.get("skipped") else []),
            *([("Stopped", body["stopped"])] if body.get("stopped") else []),
        ]
    )
    rows = []
    for direction in ("inbound", "outbound"):
        for object_type, counts in (body.get(direction) or {}).items():
            rows.append(
                {
                    "direction": direction,
                    "object": object_type,
                    "counts": ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing",
                }
            )
    if rows:
        table(
            rows, [("Direction", "direction"), ("Object", "object"), ("Done", "counts")], title="This cycle"
        )


@sync_app.command("errors")
def sync_errors(
    ctx: typer.Context,
    category: Annotated[
        str | None,
        typer.Option(
            help="ASSOCIATIONS, CUSTOM_CODE, DUPLICATES, PERMISSIONS, "
            "PROPERTY_VALUES, CONNECTION or API_LIMIT"
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Open sync errors, by category, with the record and the reason."""
    params: dict[str, Any] = {"limit": limit, **({"category": category.upper()} if category else {})}
    with api_of(ctx) as api:
        body = api.json("GET", "/corral/v1/salesforce/errors", params=params)
    if ctx.obj.as_json or not isinstance(body, dict) or "results" not in body:
        emit_json(body)
        return
    rows = [
        {
            **e,
            "record": "/".join(str(x) for x in (e.get("objectType"), e.get("recordId")) if x)
            + (f" (SF {e['salesforceId']})" if e.get("salesforceId") else ""),
        }
        for e in body["results"]
    ]
    table(
        rows,
        [
            ("ID", "id"),
            ("Category", "category"),
            ("Direction", "direction"),
            ("Record", "record"),
            ("Code", "code"),
            ("Message", "message"),
            ("Attempts", "attempts"),
        ],
        title="Sync errors",
    )


# ---- tokens ----------------------------------------------------------------------------------------------


def run_admin(args: list[str]) -> None:
    """corral-admin's own code, against the database GATEWAY_DATABASE_URL names (as the gateway does)."""
    from corral_gateway import admin
    from corral_gateway.settings import GatewaySettings

    import asyncpg

    try:
        code = admin.main(args)
    except OSError as exc:
        raise CorralError(
            f"cannot reach the gateway's database ({GatewaySettings().database_url}; set "
            f"GATEWAY_DATABASE_URL): {exc}"
        ) from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CorralError(f"the gateway's database refused: {exc}") from None
    if code:
        raise typer.Exit(code)


@token_app.command("create")
def token_create(
    account: Annotated[str, typer.Argument(metavar="ACCOUNT")],
    scopes: Annotated[str | None, typer.Option(help="Comma-separated (default: all)")] = None,
    name: Annotated[str, typer.Option(help="A label for humans")] = "",
    rate_limit: Annotated[int | None, typer.Option(min=0, help="Calls per rolling 10 s (0: none)")] = None,
    daily_limit: Annotated[int | None, typer.Option(min=0, help="Calls per day (0: none)")] = None,
) -> None:
    """Create an access token (and the account if needed); prints the token alone, for $(...)."""
    args = ["create-token", account, "--name", name]
    args += ["--scopes", scopes] if scopes else []
    args += ["--rate-limit", str(rate_limit)] if rate_limit is not None else []
    args += ["--daily-limit", str(daily_limit)] if daily_limit is not None else []
    run_admin(args)


@token_app.command("list")
def token_list(account: Annotated[str, typer.Argument(metavar="ACCOUNT")]) -> None:
    """An account's tokens (never the secrets)."""
    run_admin(["list-tokens", account])


@token_app.command("revoke")
def token_revoke(key: Annotated[str, typer.Argument(metavar="TOKEN_PREFIX_OR_ID")]) -> None:
    """Revoke a token by id, display prefix or the full token."""
    run_admin(["revoke-token", key])


def main() -> None:
    try:
        app()
    except CorralError as exc:
        err.print(f"corral: {exc}", style="red" if err.is_terminal else None)
        sys.exit(1)
