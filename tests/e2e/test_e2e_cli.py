"""The `corral` command line against the running suite: a 100,000-row import with its live progress bar in a
pseudo-terminal, and the same commands in a pipe, where they print plain lines and JSON."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("e2e")

CORRAL = str(Path(sys.executable).parent / "corral")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def write_contacts(path: Path, rows: int, bad_every: int, tag: str) -> int:
    """A contacts CSV; every `bad_every`-th row has an invalid email. Returns how many rows are bad."""
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Last Name", "City"])
        for i in range(1, rows + 1):
            if i % bad_every == 0:
                bad += 1
                writer.writerow([f"not-an-email-{i}", f"Bad{i}", "Row", "Nowhere"])
            else:
                writer.writerow([f"cli{i}-{tag}@example.com", f"First{i}", f"Last{i}", "Lyon"])
    return bad


def cli_env(suite, token: str | None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "COLUMNS", "LINES"))}
    env.update({"CORRAL_URL": suite.gateway_url, "GATEWAY_DATABASE_URL": suite.databases["gateway"]})
    if token:
        env["CORRAL_TOKEN"] = token
    return env


def run_corral(
    env: dict[str, str], *args: str, check: bool = True, **overrides: str
) -> subprocess.CompletedProcess[str]:
    """`corral ARGS` in a pipe (captured stdout and stderr); with `check`, it must succeed."""
    done = subprocess.run(
        [CORRAL, *args], env={**env, **overrides}, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, f"corral {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def cli_token(suite) -> str:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [CORRAL, "token", "create", f"cli-{uuid.uuid4().hex[:6]}", "--rate-limit", "0"],
        env=cli_env(suite, None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("pat-") and "\n" not in token, done.stdout
    return token


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Runs the command in a pseudo-terminal (stdin, stdout, stderr); returns its exit code and the screen."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "40"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(
                f"{args} did not end in {timeout} s:\n{b''.join(chunks).decode(errors='replace')[-3000:]}"
            )
    finally:
        os.close(master)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", errors="replace")


def test_import_of_100000_rows_with_a_live_progress_bar(suite, cli_token, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    source = tmp_path / "contacts.csv"
    bad = write_contacts(source, 100_000, bad_every=2_000, tag=tag)
    code, screen = run_in_terminal(
        [CORRAL, "import", str(source), "--object", "contacts", "--mapping", "auto"],
        cli_env(suite, cli_token),
        timeout=600,
    )
    text = ANSI.sub("", screen)
    assert code == 0, text[-3000:]

    # The bar was redrawn in place as rows came in: several distinct positions between the start and the end.
    positions = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+)/100,000 rows", text)]
    assert positions and positions[-1] == 100_000, text[-2000:]
    assert positions == sorted(positions), "the bar went backwards"
    assert len({p for p in positions if 0 < p < 100_000}) >= 2, (
        f"the bar did not advance step by step: {positions}"
    )
    assert "\r" in screen and "\x1b[" in screen, "a terminal gets a redrawn, coloured bar"
    assert re.search(r"[\d,]+ rows/s", text), "the rate is shown"

    assert "Mapping: Email -> email, First Name -> firstname, Last Name -> lastname, City -> city" in text
    summary = dict(
        re.findall(r"^(Import|State|Rows|Created|Updated|Rows with errors)\s{2,}(.+?)\s*$", text, re.M)
    )
    assert summary["State"] == "DONE"
    assert summary["Rows"] == "100,000 of 100,000"
    assert summary["Created"] == f"{100_000 - bad:,}"
    assert summary["Updated"] == "0"
    errors_file = source.with_name(f"contacts.import-{summary['Import'].split()[0]}-errors.csv")
    assert summary["Rows with errors"] == f"{bad:,} (written to {errors_file})"
    with errors_file.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == bad
    assert {r["Error type"] for r in rows} == {"INVALID_EMAIL"}
    assert sorted(int(r["Line number"]) for r in rows) == [n + 1 for n in range(2_000, 100_001, 2_000)]


def test_commands_in_a_pipe_print_plain_lines_and_json(suite, cli_token, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = cli_env(suite, cli_token)
    tag = uuid.uuid4().hex[:8]
    source = tmp_path / "people.csv"
    bad = write_contacts(source, 3_000, bad_every=1_000, tag=tag)

    def corral(*args: str, check: bool = True, **overrides: str) -> subprocess.CompletedProcess[str]:
        return run_corral(env, *args, check=check, **overrides)

    imported = corral("import", str(source), "--object", "contacts", "--name", f"pipe {tag}")
    for output in (imported.stdout, imported.stderr):
        assert "\x1b[" not in output and "\r" not in output, "no bar and no colours in a pipe"
    summary = dict(re.findall(r"^(\w[\w ]*?)\s{2,}(.+)$", imported.stdout, re.M))
    import_id = summary["Import"].split()[0]
    assert summary["State"] == "DONE" and summary["Created"] == f"{3_000 - bad:,}"
    assert re.search(
        rf"import {import_id} DONE: 3,000/3,000 rows, created 2,997, updated 0, errors 3", imported.stderr
    )

    status = json.loads(corral("--json", "imports", "status", import_id).stdout)
    assert status["state"] == "DONE" and status["metadata"]["counters"]["ROWS_WITH_ERRORS"] == bad

    listed = corral("imports", "list").stdout.splitlines()
    assert listed[0].split("\t") == ["ID", "State", "Name", "Created", "Rows", "Errors"]
    assert [import_id, "DONE", f"pipe {tag}"] in [line.split("\t")[:3] for line in listed[1:]]

    errors = corral("imports", "errors", import_id).stdout.splitlines()
    assert [line.split("\t")[:2] for line in errors[1:]] == [
        ["1001", "INVALID_EMAIL"],
        ["2001", "INVALID_EMAIL"],
        ["3001", "INVALID_EMAIL"],
    ]
    written = tmp_path / "errors.csv"
    corral("imports", "errors", import_id, "--output", str(written))
    assert len(written.read_text(encoding="utf-8").splitlines()) == 1 + bad

    reverted = corral("imports", "revert", import_id).stdout
    assert re.search(r"^State\s+REVERTED$", reverted, re.M), reverted
    assert json.loads(corral("--json", "imports", "status", import_id).stdout)["state"] == "REVERTED"

    # Every failure: a non-zero exit and one line saying what went wrong.
    missing = corral("imports", "status", "999999999", check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert re.fullmatch(
        r"corral: GET /crm/v3/imports/999999999: HTTP 404: Import 999999999 not found "
        r"\[correlationId [\w-]+\]\n",
        missing.stderr,
    ), missing.stderr
    wrong_token = corral("imports", "list", check=False, CORRAL_TOKEN="pat-nope")
    assert wrong_token.returncode == 1
    assert "HTTP 401" in wrong_token.stderr and "CORRAL_TOKEN" in wrong_token.stderr
    nowhere = corral("imports", "list", check=False, CORRAL_URL="http://127.0.0.1:9")
    assert nowhere.returncode == 1
    assert (
        nowhere.stderr
        == "corral: cannot reach Corral at http://127.0.0.1:9 (is it running? set CORRAL_URL)\n"
    )
    no_file = corral("import", str(tmp_path / "absent.csv"), check=False)
    assert no_file.returncode == 2 and "absent.csv" in no_file.stderr
    unmappable = tmp_path / "nothing.csv"
    unmappable.write_text("Colour,Shape\nred,round\n", encoding="utf-8")
    refused = corral("import", str(unmappable), check=False)
    assert refused.returncode == 1
    assert "no column of nothing.csv matches a contacts property (columns: Colour, Shape)" in refused.stderr


def test_duplicate_scan_and_list_from_the_command_line(suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An account of its own (suggestions are per account); a few planted twins among distinct people."""
    account_env = cli_env(suite, None)
    made = subprocess.run(
        [CORRAL, "token", "create", f"cli-dups-{uuid.uuid4().hex[:6]}", "--rate-limit", "0"],
        env=account_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    env = cli_env(suite, token)
    tag = uuid.uuid4().hex[:6]
    people = [
        {
            "firstname": f"Person{i}",
            "lastname": f"Family{i % 17}",
            "email": f"d{i}.{tag}@example{i % 5}.com",
            "phone": f"+1 415 555 {i:04d}",
            "city": ["Lyon", "Oslo", "Rome"][i % 3],
        }
        for i in range(60)
    ]
    twins = []
    for k in (3, 17, 41):
        twin = {
            **people[k],
            "email": f"twin{k}.{tag}@elsewhere.org",
            "phone": people[k]["phone"].replace("+1 ", "(").replace(" 555 ", ") 555-"),
        }
        twins.append((k, len(people)))
        people.append(twin)
    with httpx.Client(
        base_url=suite.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as api:
        created = api.post(
            "/crm/v3/objects/contacts/batch/create",
            json={"inputs": [{"properties": p} for p in people[:100]]},
        )
        assert created.status_code == 201, created.text
        ids = [r["id"] for r in created.json()["results"]]

    scan = run_corral(env, "duplicates", "scan", "--object", "contacts")
    assert re.search(r"^Status\s+COMPLETE$", scan.stdout, re.M), scan.stdout
    assert re.search(rf"^recordsRead\s+{len(people)}$", scan.stdout, re.M), scan.stdout

    listed = run_corral(env, "duplicates", "list", "--object", "contacts")
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t") == ["ID", "Records", "Score", "Matched on"]
    found = {frozenset(line.split("\t")[1].split(", ")) for line in lines[1:]}
    planted = {frozenset((ids[a], ids[b])) for a, b in twins}
    assert len(found & planted) >= 2, (found, planted)
    as_json = json.loads(run_corral(env, "--json", "duplicates", "list", "--object", "contacts").stdout)
    assert {frozenset(c["recordIds"]) for c in as_json["results"]} == found


def test_sync_status_run_and_errors_from_the_command_line(suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An account of its own connected to the Salesforce emulator, syncing contacts."""
    env = cli_env(
        suite,
        run_corral(
            cli_env(suite, None), "token", "create", f"cli-sync-{uuid.uuid4().hex[:6]}", "--rate-limit", "0"
        ).stdout.strip(),
    )
    before = run_corral(env, "sync", "status")
    assert re.search(r"^State\s+NOT_CONNECTED", before.stdout, re.M), before.stdout

    emulator = f"http://127.0.0.1:{suite.emulator_ports[0]}"
    with httpx.Client(
        base_url=suite.gateway_url, timeout=60, headers={"Authorization": f"Bearer {env['CORRAL_TOKEN']}"}
    ) as api:
        for method, path, body in [
            (
                "PUT",
                "/corral/v1/salesforce/connection",
                {
                    "loginUrl": emulator,
                    "flow": "client_credentials",
                    "clientId": "corral-emulator",
                    "clientSecret": "corral-emulator-secret",
                },
            ),
            ("PUT", "/corral/v1/salesforce/objects/contacts", {"salesforceObject": "Contact"}),
            ("POST", "/corral/v1/salesforce/sync/start", None),
            (
                "POST",
                "/crm/v3/objects/contacts",
                {
                    "properties": {
                        "email": f"cli-sync-{uuid.uuid4().hex[:6]}@example.com",
                        "firstname": "Cli",
                        "lastname": "Sync",
                    }
                },
            ),
        ]:
            response = api.request(method, path, json=body)
            assert response.status_code < 300, f"{method} {path}: {response.text}"

    ran = run_corral(env, "sync", "run")
    assert re.search(r"^API calls\s+[1-9]\d*$", ran.stdout, re.M), ran.stdout
    assert re.search(r"^outbound\tcontacts\t.*created 1", ran.stdout, re.M), ran.stdout

    status = run_corral(env, "sync", "status")
    assert re.search(r"^State\s+RUNNING$", status.stdout, re.M), status.stdout
    assert re.search(r"^API calls \(24 h\)\s+[1-9][\d,]*", status.stdout, re.M), status.stdout
    assert re.search(r"^contacts\tContact\tyes\t", status.stdout, re.M), status.stdout
    assert json.loads(run_corral(env, "--json", "sync", "status").stdout)["state"] == "RUNNING"

    errors = run_corral(env, "sync", "errors").stdout.splitlines()
    assert errors[0].split("\t") == ["ID", "Category", "Direction", "Record", "Code", "Message", "Attempts"]
    refused = run_corral(env, "sync", "errors", "--category", "NOPE", check=False)
    assert refused.returncode == 1 and refused.stderr.startswith(
        "corral: GET /corral/v1/salesforce/errors: HTTP 400"
    )
