"""import-svc's figures.

Imports waiting or running, how long since the slowest one last moved, and rows still to import are
read from the database when scraped (the same truth on every replica). Rows, records and errors are
counted by the worker that did the work, per batch.
"""

from __future__ import annotations

from crm_common.observability.metrics import DatabaseGauge, counter, histogram

ROWS = counter("corral_import_rows", "Rows read and processed by import workers")
RECORDS = counter(
    "corral_import_records", "Records written by imports, by result (created, updated, unchanged)", ["result"]
)
ROW_ERRORS = counter("corral_import_row_errors", "Import rows refused (kept in the import's error list)")
BATCH_DURATION = histogram(
    "corral_import_batch_duration_seconds",
    "Time to process one batch of rows (conversion and the records-svc bulk write)",
)
FINISHED = counter("corral_imports_finished", "Imports that ended, by final state", ["state"])

WAITING_OR_RUNNING = ("STARTED", "PROCESSING", "DEFERRED")

STATE_METRICS = (
    DatabaseGauge(
        "corral_imports",
        "Imports waiting to start (STARTED), running (PROCESSING) or deferred (DEFERRED)",
        "SELECT state, count(*) FROM imports WHERE state IN ('STARTED', 'PROCESSING', 'DEFERRED') "
        "GROUP BY state",
        labels=("state",),
        expected=tuple((state,) for state in WAITING_OR_RUNNING),
    ),
    # A running import checkpoints every batch (seconds apart); a STARTED one is claimed within a second
    # by any replica's worker. Minutes without either means a stuck import.
    DatabaseGauge(
        "corral_import_seconds_since_progress",
        "Seconds since the least recently advanced STARTED or PROCESSING import last moved (0 when none)",
        "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - updated_at)), 0) FROM imports "
        "WHERE state IN ('STARTED', 'PROCESSING')",
    ),
    DatabaseGauge(
        "corral_import_rows_pending",
        "Rows of waiting, running and deferred imports not processed yet",
        "SELECT coalesce(sum(greatest(coalesce((c.counters->>'TOTAL_ROWS')::bigint, 0) "
        "- coalesce((c.counters->>'ROWS_PROCESSED')::bigint, 0), 0)), 0) "
        "FROM imports i JOIN import_checkpoints c ON c.import_id = i.id "
        "WHERE i.state IN ('STARTED', 'PROCESSING', 'DEFERRED')",
    ),
)


def count_batch(counters: dict[str, int], seconds: float) -> None:
    ROWS.inc(counters.get("ROWS_PROCESSED", 0))
    for result, key in (
        ("created", "CREATED_OBJECTS"),
        ("updated", "UPDATED_OBJECTS"),
        ("unchanged", "UNCHANGED_OBJECTS"),
    ):
        RECORDS.labels(result).inc(counters.get(key, 0))
    ROW_ERRORS.inc(counters.get("ROWS_WITH_ERRORS", 0))
    BATCH_DURATION.observe(seconds)
