"""The monitoring component: valid Prometheus Operator resources that scrape where the processes serve their
figures, alert rules that promtool accepts and whose alerts fire when they should, and rules and a dashboard
that query only metrics the services really expose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pydantic
import pytest
import yaml
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

from .test_deploy_manifests import (
    BY_NAME,
    COMPONENTS,
    K8S,
    ROOT,
    container_env,
    named,
    of_kind,
    render,
    selects,
)

MONITORING = K8S / "components" / "monitoring"
BY_NAME_PORT = {name: c.port for name, c in BY_NAME.items()}
PROMTOOL = shutil.which("promtool") or str(ROOT / ".run" / "tools" / "promtool")
MODELS = {"ServiceMonitor": ServiceMonitor, "PrometheusRule": PrometheusRule}
# Labels Prometheus adds to every scraped series (from the target), and the histogram bucket label.
TARGET_LABELS = {"namespace", "job", "instance", "pod", "service", "endpoint", "container", "le"}
# Figures the alerts and the dashboard already use, which sync-svc and merge-svc's duplicate scans are to
# expose (see /work/coord/LOG.md for the contract). Remove a name here when its service exposes it.
PENDING = {
}


def prod() -> tuple[dict, ...]:
    return render("overlays/prod")


def monitoring_resources() -> list[dict]:
    return [d for d in prod() if d["apiVersion"].startswith("monitoring.coreos.com/")]


# ---- the resources -------------------------------------------------------------------------------------


def strictly_valid(doc: dict) -> None:
    """Valid against the operator's schema (cloudcoil's models are generated from its CRDs), and nothing
    unknown: a field the schema does not have would be silently dropped by the operator, so it fails here."""
    model = MODELS[doc["kind"]].model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == doc


def test_the_monitoring_resources_match_the_prometheus_operator_schemas():
    resources = monitoring_resources()
    assert sorted((d["kind"], d["metadata"]["name"]) for d in resources) == [
        ("PrometheusRule", "corral"),
        ("ServiceMonitor", "corral-gateway"),
        ("ServiceMonitor", "corral-services"),
    ]
    for doc in resources:
        strictly_valid(doc)


def test_schema_validation_rejects_unknown_and_malformed_fields():
    """Guards the test above: a typo or a bad duration must not pass."""
    monitor = named(prod(), "ServiceMonitor", "corral-services")
    typo = {**monitor, "spec": {**monitor["spec"], "endpoint": monitor["spec"]["endpoints"]}}
    with pytest.raises(AssertionError):
        strictly_valid(typo)
    bad_interval = json.loads(json.dumps(monitor))
    bad_interval["spec"]["endpoints"][0]["interval"] = "every 30 seconds"
    with pytest.raises(pydantic.ValidationError):
        strictly_valid(bad_interval)


def test_service_monitors_scrape_where_each_process_serves_its_figures():
    docs = prod()
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    scraped: dict[str, int] = {}
    for monitor in of_kind(docs, "ServiceMonitor"):
        selected = [
            s for s in services.values() if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert selected, f"{monitor['metadata']['name']} selects no Service"
        for service in selected:
            name = service["metadata"]["name"]
            deployment = named(docs, "Deployment", name)
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["path"] == "/metrics"
                (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
                scraped[name] = container_ports[port["targetPort"]]
    assert scraped.keys() == {c.name for c in COMPONENTS}
    for component in COMPONENTS:
        env, _ = container_env(docs, named(docs, "Deployment", component.name)["spec"]["template"]["spec"])
        # The gateway's figures are on GATEWAY_METRICS_PORT, never its public port; the services' on theirs.
        expected = int(env["GATEWAY_METRICS_PORT"]) if component.name == "gateway" else component.port
        assert scraped[component.name] == expected, component.name
    assert scraped["gateway"] != BY_NAME_PORT["gateway"], "never on the public port"


def test_prometheus_may_reach_every_metrics_port_and_nothing_else():
    docs = prod()
    policies = of_kind(docs, "NetworkPolicy")
    monitoring_peer = {"kubernetes.io/metadata.name": "monitoring"}
    for component in COMPONENTS:
        labels = named(docs, "Deployment", component.name)["spec"]["template"]["metadata"]["labels"]
        opened = set()
        for policy in policies:
            if "Ingress" not in policy["spec"]["policyTypes"] or not selects(
                policy["spec"]["podSelector"], labels
            ):
                continue
            for rule in policy["spec"].get("ingress", []):
                if any(
                    peer.get("namespaceSelector", {}).get("matchLabels") == monitoring_peer
                    for peer in rule.get("from", [])
                ):
                    opened |= {p["port"] for p in rule["ports"]}
        expected = 9080 if component.name == "gateway" else component.port
        assert opened == {expected}, component.name


def test_dashboard_is_shipped_for_grafanas_sidecar():
    cm = named(prod(), "ConfigMap", "corral-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["corral.json"])
    assert dashboard["uid"] == "corral-overview"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert len(panels) >= 20 and all(p["targets"] and p["title"] for p in panels)


# ---- promtool ---------------------------------------------------------------------------------------------


def rule_groups() -> dict:
    return {"groups": named(prod(), "PrometheusRule", "corral")["spec"]["groups"]}


def promtool() -> str:
    if not Path(PROMTOOL).exists():
        message = "promtool is not installed (`make test` takes it out of Debian's prometheus package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return PROMTOOL


def test_alert_rules_pass_promtool_check(tmp_path: Path):
    rules = tmp_path / "corral-rules.yaml"
    rules.write_text(yaml.safe_dump(rule_groups()))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alerts_fire_on_the_series_an_operator_fears(tmp_path: Path):
    (tmp_path / "corral-rules.yaml").write_text(yaml.safe_dump(rule_groups()))
    shutil.copy(Path(__file__).with_name("alerts_test.yaml"), tmp_path / "alerts_test.yaml")
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r}
    tested = set(re.findall(r"alertname: (\w+)", (tmp_path / "alerts_test.yaml").read_text()))
    assert alerts - {"CorralConsumerFallingBehind"} <= tested, alerts - tested


# ---- metric names -----------------------------------------------------------------------------------------


@cache
def exposed() -> dict[str, set[str]]:
    """Every sample name the processes expose, with its label names: per-process metrics from the registry
    once every app is built, state figures from each app's exporter."""
    from corral_gateway.main import create_app as gateway_app
    from import_svc.main import create_app as import_app
    from merge_svc.main import create_app as merge_app
    from prometheus_client import REGISTRY
    from records_svc.main import create_app as records_app
    from sync_svc.main import create_app as sync_app

    names: dict[str, set[str]] = {}
    apps = [factory() for factory in (records_app, import_app, merge_app, sync_app)]
    gateway_app()
    # The registry knows each collector's sample names (`_total`, `_bucket`...) and, for ours, its labels.
    for collector, sample_names in list(REGISTRY._collector_to_names.items()):
        for name in sample_names:
            names.setdefault(name, set()).update(getattr(collector, "_labelnames", ()))
    for app in apps:
        for metric in app.state.metrics.state_metrics:
            for name in metric.names:
                names.setdefault(name, set()).update(getattr(metric, "labels", ()) or ())
    # Families whose label names the registry cannot describe statically: their collectors name them.
    names.setdefault("corral_consumer_queue_messages", set()).add("queue")
    names.setdefault("corral_consumer_queue_consumers", set()).add("queue")
    names.setdefault("corral_dead_letter_messages", set()).add("queue")
    names["up"] = set()
    return names


def queries() -> list[tuple[str, str]]:
    found = [
        (f"rule {r.get('alert') or r.get('record')}", r["expr"])
        for g in rule_groups()["groups"]
        for r in g["rules"]
    ]
    dashboard = json.loads((MONITORING / "dashboards" / "corral.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["definition"]))
    return found


def unknown_names(found: list[tuple[str, str]]) -> list[str]:
    names = exposed()
    recorded = {r["record"] for g in rule_groups()["groups"] for r in g["rules"] if "record" in r}
    problems = []
    for where, expr in found:
        for metric in re.findall(r"\b(corral:[a-z0-9_:]+)", expr):
            if metric not in recorded:
                problems.append(f"{where}: recording rule {metric} is not defined")
        for metric, matchers in re.findall(r"\b(corral_[a-z0-9_]+|up)\b(?:\{([^}]*)\})?", expr):
            labels = names.get(metric, PENDING.get(metric))
            if labels is None:
                problems.append(f"{where}: no process exposes {metric}")
                continue
            used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers or ""))
            if used - labels - TARGET_LABELS:
                problems.append(f"{where}: {metric} has no label {used - labels - TARGET_LABELS}")
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in (x.strip() for x in grouping.split(",")):
                if (
                    label
                    and label not in TARGET_LABELS
                    and not any(label in ls for ls in names.values())
                    and not any(label in ls for ls in PENDING.values())
                ):
                    problems.append(f"{where}: no metric has the label {label}")
    return problems


def test_rules_and_dashboard_query_only_metrics_and_labels_that_exist():
    problems = unknown_names(queries())
    assert not problems, "\n".join(problems)


def test_the_name_check_catches_a_misspelt_metric_or_label():
    """Guards the cross-check: names and labels no process exposes are reported."""
    assert unknown_names([("panel 'typo'", "rate(corral_import_row_total[5m])")]) == [
        "panel 'typo': no process exposes corral_import_row_total"
    ]
    assert unknown_names([("panel 'label'", 'sum by (job) (corral_imports{status="DONE"})')]) == [
        "panel 'label': corral_imports has no label {'status'}"
    ]


def test_pending_figures_are_not_exposed_yet():
    """When sync-svc or the duplicate scans expose one of these, it leaves PENDING and is checked."""
    assert not PENDING.keys() & exposed().keys()
