"""merge-svc's figures: merges and unmerges by outcome, how long a merge takes, merges left pending."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from crm_common.errors import HubSpotError
from crm_common.observability.metrics import DatabaseGauge, counter, histogram

MERGES = counter(
    "corral_merges",
    "Merge requests, by object type and outcome (merged, refused, failed)",
    ["object_type", "outcome"],
)
MERGE_DURATION = histogram(
    "corral_merge_duration_seconds",
    "Time to decide and apply a merge that succeeded, by object type",
    ["object_type"],
)
UNMERGES = counter("corral_unmerges", "Unmerge requests, by outcome (unmerged, refused, failed)", ["outcome"])

DUPLICATE_SCANS = counter("corral_duplicate_scans", "Duplicate scans run, by outcome (complete, failed)",
                          ["outcome"])

STATE_METRICS = (
    DatabaseGauge(
        "corral_merges_pending",
        "Merges stored but not yet confirmed by records-svc (the reconciler settles them)",
        "SELECT count(*) FROM merges WHERE status = 'PENDING'",
    ),
    DatabaseGauge(
        "corral_duplicate_scans",
        "Duplicate scans waiting (queued) or running",
        "SELECT CASE status WHEN 'PENDING' THEN 'queued' ELSE 'running' END, count(*) FROM duplicate_jobs "
        "WHERE status IN ('PENDING', 'RUNNING') GROUP BY 1",
        labels=("state",),
        expected=(("queued",), ("running",)),
    ),
)

STANDARD_TYPES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
    "tickets": "tickets",
    "ticket": "tickets",
    "0-5": "tickets",
}


def type_label(object_type: str) -> str:
    """Standard types by name; every custom object as `custom`, so accounts cannot multiply the series."""
    return STANDARD_TYPES.get(object_type.lower(), "custom")


@contextmanager
def measured_merge(object_type: str) -> Iterator[None]:
    label = type_label(object_type)
    started = time.perf_counter()
    try:
        yield
    except HubSpotError as exc:
        MERGES.labels(label, "refused" if exc.status < 500 else "failed").inc()
        raise
    except Exception:
        MERGES.labels(label, "failed").inc()
        raise
    MERGES.labels(label, "merged").inc()
    MERGE_DURATION.labels(label).observe(time.perf_counter() - started)


@contextmanager
def measured_unmerge() -> Iterator[None]:
    try:
        yield
    except HubSpotError as exc:
        UNMERGES.labels("refused" if exc.status < 500 else "failed").inc()
        raise
    except Exception:
        UNMERGES.labels("failed").inc()
        raise
    UNMERGES.labels("unmerged").inc()
