"""Prometheus figures of every process of the running suite move with an import and a merge."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest
from crm_common.testing import Scrape

pytestmark = pytest.mark.xdist_group("e2e")

PARTS = ("gateway", "records-svc", "import-svc", "merge-svc", "sync-svc")
ROWS = 30_000


def scrape_all(suite) -> dict[str, Scrape]:  # type: ignore[no-untyped-def]
    figures = {}
    for part in PARTS:
        response = httpx.get(suite.metrics_url(part), timeout=10)
        assert response.status_code == 200, f"{part}: {response.text}"
        figures[part] = Scrape(response.text)
    return figures


def test_counters_move_during_an_import_and_a_merge(suite, token) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    api = httpx.Client(base_url=suite.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    before = scrape_all(suite)

    csv = "Email,First Name\n" + "".join(f"m{i}-{tag}@example.com,Person {i}\n" for i in range(ROWS))
    request = {
        "name": f"metrics {tag}",
        "files": [
            {
                "fileName": "people.csv",
                "fileFormat": "CSV",
                "fileImportPage": {
                    "hasHeader": True,
                    "columnMappings": [
                        {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
                        {
                            "columnObjectTypeId": "0-1",
                            "columnName": "First Name",
                            "propertyName": "firstname",
                        },
                    ],
                },
            }
        ],
    }
    started = api.post(
        "/crm/v3/imports",
        data={"importRequest": orjson.dumps(request).decode()},
        files=[("files", ("people.csv", csv.encode(), "text/csv"))],
    )
    assert started.status_code == 200, started.text
    import_id = started.json()["id"]

    # While it runs: a scrape taken between two answers that both say PROCESSING sees it running, with rows
    # still to import between what the two answers had processed (the e2e tests run one at a time).
    def processing() -> tuple[str, int]:
        body = api.get(f"/crm/v3/imports/{import_id}").json()
        return body["state"], int(body["metadata"]["counters"].get("ROWS_PROCESSED", 0))

    windows: list[tuple[int, dict[str, Scrape], int]] = []
    state = ""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state, done_before = processing()
        if state in ("DONE", "FAILED", "CANCELED"):
            break
        if state == "PROCESSING":
            during = scrape_all(suite)
            state, done_after = processing()
            if state == "PROCESSING":
                windows.append((done_before, during, done_after))
        time.sleep(0.1)
    assert state == "DONE"
    assert windows, "the import never stayed PROCESSING across a scrape"
    for done_before, during, done_after in windows:
        importer = during["import-svc"]
        assert importer.value("corral_imports", state="PROCESSING") == 1
        assert ROWS - done_after <= importer.value("corral_import_rows_pending") <= ROWS - done_before
        # The counters move while it runs: the rows checkpointed so far were counted by import-svc and written
        # by records-svc before the scrape.
        assert importer.value("corral_import_rows_total") - before["import-svc"].value(
            "corral_import_rows_total") >= done_before
        assert during["records-svc"].value("corral_records_bulk_rows_total", result="created") - before[
            "records-svc"].value("corral_records_bulk_rows_total", result="created") >= done_before
    assert any(0 < done_before < ROWS for done_before, _, _ in windows), "no scrape between two batches"

    primary = api.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": f"p-{tag}@example.com"}}
    ).json()
    secondary = api.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": f"s-{tag}@example.com"}}
    ).json()
    merged = api.post(
        "/crm/v3/objects/contacts/merge",
        json={"primaryObjectId": primary["id"], "objectIdToMerge": secondary["id"]},
    )
    assert merged.status_code == 200, merged.text

    after = scrape_all(suite)
    for _ in range(50):  # the relays publish within moments of the commit
        if (
            after["records-svc"].value("corral_outbox_events_published_total", event_type="record.created")
            - before["records-svc"].value("corral_outbox_events_published_total", event_type="record.created")
            >= ROWS
        ):
            break
        time.sleep(0.2)
        after = scrape_all(suite)

    def moved(part: str, name: str, **labels: str) -> float:
        return after[part].value(name, **labels) - before[part].value(name, **labels)

    # gateway: requests by its routing table's patterns
    assert (
        moved("gateway", "corral_http_requests_total", method="POST", route="/crm/v3/imports", status="200")
        >= 1
    )
    assert (
        moved(
            "gateway",
            "corral_http_requests_total",
            method="POST",
            route="/crm/v3/objects/*/merge",
            status="200",
        )
        >= 1
    )
    assert moved("gateway", "corral_gateway_upstream_duration_seconds_count", backend="imports") >= 2
    # import-svc: the rows and records of this import, and its end
    assert moved("import-svc", "corral_import_rows_total") >= ROWS
    assert moved("import-svc", "corral_import_records_total", result="created") >= ROWS
    assert moved("import-svc", "corral_imports_finished_total", state="DONE") >= 1
    assert moved("import-svc", "corral_outbox_events_written_total", event_type="import.completed") >= 1
    assert after["import-svc"].value("corral_import_seconds_since_progress") >= 0
    # records-svc: the bulk writes the import made, their events written and published
    assert (
        moved(
            "records-svc",
            "corral_http_requests_total",
            method="POST",
            route="/internal/v1/records/{objectType}/bulk-upsert",
            status="200",
        )
        >= 3
    )
    assert moved("records-svc", "corral_outbox_events_written_total", event_type="record.created") >= ROWS + 2
    assert moved("records-svc", "corral_outbox_events_published_total", event_type="record.created") >= ROWS
    assert moved("records-svc", "corral_outbox_publish_lag_seconds_count") >= 1
    assert moved("records-svc", "corral_records_bulk_rows_total", result="created") >= ROWS
    # merge-svc: the merge and how long it took
    assert moved("merge-svc", "corral_merges_total", object_type="contacts", outcome="merged") == 1
    assert moved("merge-svc", "corral_merge_duration_seconds_count", object_type="contacts") == 1
    assert moved("merge-svc", "corral_outbox_events_written_total", event_type="record.merged") == 1
    assert after["merge-svc"].has("corral_merges_pending")
    # merge-svc subscribes to record events (duplicate suggestions): the records this import created reach it.
    queue = "merge-svc.duplicates"
    deadline = time.monotonic() + 120
    while moved("merge-svc", "corral_consumer_messages_total", queue=queue, outcome="acked") < 1:
        assert time.monotonic() < deadline, "merge-svc handled no record event"
        time.sleep(0.5)
        after["merge-svc"] = scrape_all(suite)["merge-svc"]
    assert moved("merge-svc", "corral_consumer_events_total", queue=queue, outcome="handled") >= 1
    assert moved("merge-svc", "corral_consumer_lag_seconds_count", queue=queue) >= 1
    assert after["merge-svc"].has("corral_consumer_queue_messages", queue=queue)
    assert after["merge-svc"].value("corral_consumer_queue_consumers", queue=queue) >= 1
    assert after["merge-svc"].has("corral_dead_letter_messages")
    for part in PARTS:
        assert after[part].value("corral_db_pool_connections_max") > 0, part
        if part != "gateway":
            assert after[part].has("corral_outbox_pending_messages"), part
