"""kill -9 of the real processes in the middle of imports: the records and the counters come out exact.

records-svc is killed several times while imports run (a batch committed whose answer never arrived
is sent again; its batch key brings back the first answer). import-svc kills itself at each stage of a
batch (before its records calls, after them, after its checkpoint); the restarted process takes the
import over at once, without waiting for the 120 s lease of the dead one.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("e2e")

IMPORT_ENV = {"IMPORT_SVC_WORKER_BATCH_SIZE": "150", "IMPORT_SVC_WORKER_RETRY_SECONDS": "0.5",
              "IMPORT_SVC_WORKER_POLL_INTERVAL": "0.2", "IMPORT_SVC_RECORDS_RETRIES": "2"}


@pytest.fixture
def gateway(suite: Any, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=suite.gateway_url, headers={"authorization": f"Bearer {token}"}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def restarted_import_svc(suite: Any) -> Iterator[None]:
    """import-svc with small batches for these tests, and as the suite had it afterwards."""
    suite.stop_process("import-svc")
    suite.start_process("import-svc", extra_env=IMPORT_ENV)
    suite.wait_live("import-svc")
    yield
    suite.stop_process("import-svc")
    suite.start_process("import-svc")
    suite.wait_live("import-svc")


def start_import(gateway: httpx.Client, tag: str, rows: list[tuple[str, str]]) -> str:
    content = "Email,First Name,Company domain\n" + "".join(
        f"{email},{name},{tag}-co{i % 20}.example\n" for i, (email, name) in enumerate(rows))
    request = {"name": f"kill {tag}", "files": [{"fileName": "c.csv", "fileImportPage": {
        "hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
            {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"},
            {"columnObjectTypeId": "0-2", "columnName": "Company domain", "propertyName": "domain"}]}}]}
    import json

    answer = gateway.post("/crm/v3/imports", data={"importRequest": json.dumps(request)},
                          files=[("files", ("c.csv", content.encode(), "text/csv"))])
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def status(gateway: httpx.Client, import_id: str) -> dict[str, Any]:
    for _ in range(50):
        try:
            answer = gateway.get(f"/crm/v3/imports/{import_id}")
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return answer.json()
        time.sleep(0.2)  # import-svc restarting
    raise AssertionError(f"no status for import {import_id}")


def wait_done(gateway: httpx.Client, import_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = status(gateway, import_id)
        if body["state"] in ("DONE", "FAILED", "CANCELED"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"import {import_id} not done after {timeout:.0f}s: {status(gateway, import_id)}")


def existing_contacts(gateway: httpx.Client, tag: str, count: int) -> list[tuple[str, str]]:
    rows = [(f"old{i}@{tag}.example", "Before") for i in range(count)]
    for start in range(0, count, 100):
        answer = gateway.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [
            {"properties": {"email": e, "firstname": n}} for e, n in rows[start:start + 100]]})
        assert answer.status_code in (200, 201), answer.text
    return rows


def expected_counters(new: int, existing: int) -> dict[str, int]:
    return {"CREATED_OBJECTS": new + 20, "UPDATED_OBJECTS": existing, "ROWS_PROCESSED": new + existing,
            "CREATED_ASSOCIATIONS": new + existing}


def test_records_svc_killed_again_and_again_mid_import_leaves_exact_counters(
        suite: Any, gateway: httpx.Client, restarted_import_svc: None) -> None:
    chance = random.Random(16)
    kills = 0
    for run in range(2):
        tag = f"rkill{run}-{chance.randrange(10**6)}"
        old = existing_contacts(gateway, tag, 300)
        new = [(f"new{i}@{tag}.example", f"N{i}") for i in range(1_200)]
        rows = new + [(email, "After") for email, _ in old]
        chance.shuffle(rows)
        import_id = start_import(gateway, tag, rows)
        for _ in range(3):
            # Somewhere in the middle of a batch: the import has moved since the last kill.
            seen = status(gateway, import_id)["metadata"]["counters"].get("ROWS_PROCESSED", 0)
            while (now := status(gateway, import_id))["state"] in ("STARTED", "PROCESSING") and \
                    now["metadata"]["counters"].get("ROWS_PROCESSED", 0) == seen:
                time.sleep(0.05)
            if now["state"] != "PROCESSING":
                break
            time.sleep(chance.uniform(0.0, 0.3))
            suite.stop_process("records-svc", signal.SIGKILL)
            kills += 1
            suite.start_process("records-svc")
            suite.wait_live("records-svc")
        done = wait_done(gateway, import_id, timeout=180)
        assert done["state"] == "DONE", done
        counters = done["metadata"]["counters"]
        assert {k: counters.get(k, 0) for k in expected_counters(len(new), len(old))} == \
            expected_counters(len(new), len(old)), f"run {run}: {counters}"
    assert kills >= 4, f"only {kills} kills landed mid-import"


@pytest.mark.parametrize("stage", ["before_call", "after_call", "after_checkpoint"])
def test_import_svc_killed_at_each_stage_of_a_batch_resumes_at_once_and_exactly(
        stage: str, suite: Any, gateway: httpx.Client, restarted_import_svc: None) -> None:
    tag = f"ikill-{stage.replace('_', '')}-{random.randrange(10**6)}"
    old = existing_contacts(gateway, tag, 100)
    new = [(f"new{i}@{tag}.example", f"N{i}") for i in range(400)]
    rows = new + [(email, "After") for email, _ in old]
    random.Random(stage).shuffle(rows)
    suite.stop_process("import-svc")
    dying = suite.start_process("import-svc", extra_env={
        **IMPORT_ENV, "IMPORT_SVC_WORKER_CRASH_AFTER_BATCHES": "2", "IMPORT_SVC_WORKER_CRASH_STAGE": stage,
        "IMPORT_SVC_WORKER_CRASH_KILLS_PROCESS": "true"})
    suite.wait_live("import-svc")
    import_id = start_import(gateway, tag, rows)
    dying.wait(timeout=60)
    assert dying.returncode == -signal.SIGKILL
    killed_at = time.monotonic()
    suite.start_process("import-svc", extra_env=IMPORT_ENV)
    suite.wait_live("import-svc")
    done = wait_done(gateway, import_id, timeout=90)
    # The dead process held a 120 s lease; the restarted one did not wait for it.
    assert time.monotonic() - killed_at < 60
    assert done["state"] == "DONE", done
    counters = done["metadata"]["counters"]
    assert {k: counters.get(k, 0) for k in expected_counters(len(new), len(old))} == \
        expected_counters(len(new), len(old)), counters
