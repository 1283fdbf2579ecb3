"""records-svc's own figures: rows of bulk writes by result, and writes run again after colliding.

Every other write is counted by the event it publishes (`corral_outbox_events_written_total{event_type=
"record.created"|"record.updated"|...}`), and every call by route in `corral_http_requests_total`.
"""

from __future__ import annotations

from crm_common.observability.metrics import counter

BULK_ROWS = counter("corral_records_bulk_rows",
                    "Rows of bulk upserts (imports), by result (created, updated, unchanged, failed)", ["result"])
WRITE_RETRIES = counter("corral_records_write_retries",
                        "Bulk writes run again after colliding with concurrent writers, by cause "
                        "(unique_race, lock_conflict) and whether the last try gave up", ["cause", "outcome"])
