"""Every event type the code publishes is documented in the AsyncAPI contract."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_published_event_types_are_documented() -> None:
    contract = yaml.safe_load((ROOT / "docs" / "events.asyncapi.yaml").read_text())
    documented = set(contract["channels"])
    published: set[str] = set()
    pattern = re.compile(r"""["']((?:record|association|import|sync)\.[a-z_.]+)["']""")
    for path in (ROOT / "services").rglob("*.py"):
        if "/tests/" in str(path) or "/migrations/" in str(path):
            continue
        for match in pattern.finditer(path.read_text()):
            name = match.group(1)
            if not name.endswith(".") and name.count(".") == 1:
                published.add(name)
    assert published, "no published event types found: the scan is broken"
    assert published <= documented, sorted(published - documented)
