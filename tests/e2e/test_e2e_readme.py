"""The README's quick start, pasted line by line into a clean shell, works against a running suite.

The shell starts with nothing of ours: no virtualenv, no `~/.local/bin` on PATH, only HOME, LANG and the
system PATH, as on a fresh machine after `make run`. Two things differ from a user's `make run`, and only
these: the suite listens on free ports (so the README's `http://127.0.0.1:8080` is replaced by its gateway's
address) and keeps its data in throwaway databases (so the shell is told where the gateway's is, through the
variable the gateway itself reads).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("e2e")

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEFAULT_GATEWAY = "http://127.0.0.1:8080"


def block_after(marker: str, language: str) -> str:
    found = re.search(rf"<!-- {re.escape(marker)}[^>]*-->\s*```{language}\n(.*?)```", README, re.S)
    assert found, f"README has no {language} block after <!-- {marker} -->"
    return found.group(1)


def test_the_quick_start_works_in_a_clean_shell(suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in block_after("quickstart:", "bash").splitlines() if line.strip()]
    assert lines[0] == "source .venv/bin/activate"
    python_snippet = tmp_path / "quickstart.py"
    python_snippet.write_text(block_after("quickstart-python", "python"), encoding="utf-8")

    steps = [line.replace(DEFAULT_GATEWAY, suite.gateway_url) for line in lines] + [
        f"python {python_snippet}"
    ]
    script = "".join(f"{step}\nprintf '\\n@@ step {n} exit %s\\n' $?\n" for n, step in enumerate(steps))
    home = tmp_path / "home"
    home.mkdir()
    clean = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "GATEWAY_DATABASE_URL": suite.databases["gateway"],
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input=script,
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    statuses = re.findall(r"@@ step (\d+) exit (\d+)", done.stdout)
    assert len(statuses) == len(steps), output
    failed = [(steps[int(n)], code) for n, code in statuses if code != "0"]
    assert not failed, f"these README lines failed: {failed}\n{output}"

    outputs = re.split(r"@@ step \d+ exit \d+", done.stdout)
    by_step = dict(zip(steps, outputs, strict=False))
    imported = next(text for step, text in by_step.items() if step.startswith("corral import "))
    assert re.search(r"^State\s+DONE$", imported, re.M), output
    assert re.search(r"^Rows\s+5 of 5$", imported, re.M) and re.search(r"^Created\s+5$", imported, re.M), (
        output
    )
    listed = next(text for step, text in by_step.items() if step == "corral imports list")
    assert "contacts.csv" in listed and "DONE" in listed
    contacts = next(text for step, text in by_step.items() if step.startswith("curl "))
    assert '"results"' in contacts and "@example.org" in contacts
    assert re.search(r"^\d+ ada@example\.org$", outputs[len(steps) - 1].strip(), re.M), output
