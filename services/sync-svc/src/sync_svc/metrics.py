"""sync-svc's figures, read from its database at scrape time (the same truth on every replica).

`connection` is the account id (one Salesforce org per account). Names are the ones the deployment's
alerts and dashboard use (deploy/k8s/components/monitoring).
"""

from __future__ import annotations

from crm_common.observability.metrics import DatabaseGauge, counter

API_CALLS = counter("corral_sync_salesforce_calls", "Salesforce API calls made by sync cycles")

STATE_METRICS = (
    DatabaseGauge(
        "corral_sync_api_calls_used", "Salesforce API calls the sync made in the last 24 hours, per connection",
        "SELECT c.account_id, coalesce(sum(a.calls), 0) FROM connections c LEFT JOIN api_calls a "
        "ON a.account_id = c.account_id AND a.minute > now() - interval '24 hours' "
        "WHERE c.status <> 'DISCONNECTED' GROUP BY c.account_id", labels=("connection",)),
    DatabaseGauge(
        "corral_sync_api_calls_budget", "The daily API-call budget of each connection that set one",
        "SELECT account_id, daily_api_calls FROM connections WHERE daily_api_calls IS NOT NULL "
        "AND status <> 'DISCONNECTED'", labels=("connection",)),
    DatabaseGauge(
        "corral_sync_paused", "1 when a started sync is paused (by a person, the API budget or the connection)",
        "SELECT account_id, CASE WHEN sync_state = 'PAUSED' OR suspended IS NOT NULL OR status = 'ERROR' "
        "THEN 1 ELSE 0 END FROM connections WHERE sync_state <> 'NOT_STARTED' AND status <> 'DISCONNECTED'",
        labels=("connection",)),
    DatabaseGauge(
        "corral_sync_queued_changes", "Corral records waiting to be written to Salesforce",
        "SELECT account_id, 'outbound', count(*) FROM outbound_queue GROUP BY account_id",
        labels=("connection", "direction")),
    DatabaseGauge(
        "corral_sync_errors", "Open sync errors by category",
        "SELECT category, count(*) FROM sync_errors GROUP BY category", labels=("category",),
        expected=tuple((c,) for c in ("ASSOCIATIONS", "CUSTOM_CODE", "DUPLICATES", "PERMISSIONS",
                                      "PROPERTY_VALUES", "CONNECTION", "API_LIMIT"))),
)
