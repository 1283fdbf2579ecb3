"""Failures that need no running suite: each is one line on stderr and a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

CORRAL = str(Path(sys.executable).parent / "corral")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def corral(
    *args: str, token: str | None = "pat-test", url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CORRAL_URL": url or f"http://127.0.0.1:{free_port()}"}
    if token:
        env["CORRAL_TOKEN"] = token
    return subprocess.run([CORRAL, *args], env=env, capture_output=True, text=True, timeout=60)


def test_without_a_token_it_says_how_to_get_one() -> None:
    done = corral("imports", "list", token=None)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "corral: no access token: set CORRAL_TOKEN (create one with `corral token create "
        "ACCOUNT`) or pass --token\n"
    )


def test_an_unreachable_gateway_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = corral("sync", "status", url=url)
    assert done.returncode == 1
    assert done.stderr == f"corral: cannot reach Corral at {url} (is it running? set CORRAL_URL)\n"


def test_bad_arguments_are_refused_before_any_call(tmp_path: Path) -> None:
    data = tmp_path / "people.csv"
    data.write_text("Email\na@example.com\n", encoding="utf-8")
    wrong_operation = corral("import", str(data), "--operation", "MERGE")
    assert wrong_operation.returncode == 1
    assert wrong_operation.stderr == "corral: --operation must be one of CREATE, UPDATE, UPSERT\n"

    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"columns": []}', encoding="utf-8")
    wrong_mapping = corral("import", str(data), "--mapping", str(mapping))
    assert wrong_mapping.returncode == 1
    assert "must hold a JSON list of HubSpot columnMappings" in wrong_mapping.stderr

    missing = corral("import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "nope.csv" in missing.stderr


def test_token_create_names_the_database_it_could_not_reach() -> None:
    port = free_port()
    done = subprocess.run(
        [CORRAL, "token", "create", "someone"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "GATEWAY_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/corral_gateway",
        },
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(
        f"corral: cannot reach the gateway's database (postgresql://postgres@127.0.0.1:"
        f"{port}/corral_gateway; set GATEWAY_DATABASE_URL)"
    )


def test_token_create_reports_a_database_refusal_in_one_line() -> None:
    """A database that answers but refuses (here: it does not exist) is a sentence, not a traceback."""
    done = subprocess.run([CORRAL, "token", "create", "someone"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "GATEWAY_DATABASE_URL":
                               "postgresql://no_such_role_for_corral@127.0.0.1:5432/corral_gateway"})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("corral: the gateway's database refused: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
