"""Offline checks of the deployment files: kustomize renders, Kubernetes schemas, compose, Dockerfiles.

Nothing here needs a cluster or a Docker engine. Each test reads the real files and asserts what an
operator would notice if it broke: a pod that never becomes ready, a secret committed to git, a
service started before its migration, a process running as root.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
K8S_VERSION = "1.30.0"  # one of the schema sets kubernetes-validate ships; our oldest supported cluster

SHARED_ENV = {"CORRAL_AMQP_URL", "CORRAL_INTERNAL_SECRET", "CORRAL_LOG_LEVEL", "CORRAL_LOG_JSON"}
# Only in Kubernetes: the parts $(VAR)-expanded into <PREFIX>DATABASE_URL (the password from the Secret).
K8S_DB_PARTS = {"CORRAL_DB_HOST", "CORRAL_DB_PORT", "CORRAL_DB_USER", "CORRAL_DB_PASSWORD"}
SECRET_KEYS = {"internal-secret", "database-password", "sync-encryption-key", "amqp-url"}
SECRET_ENV = {
    "CORRAL_INTERNAL_SECRET": "internal-secret",
    "CORRAL_AMQP_URL": "amqp-url",
    "CORRAL_DB_PASSWORD": "database-password",
    "SYNC_SVC_ENCRYPTION_KEY": "sync-encryption-key",
}


class Component:
    def __init__(self, name, package, member_dir, script, port, database, prefix, extra):
        self.name, self.package, self.member_dir = name, package, member_dir
        self.script, self.port, self.database, self.prefix = script, port, database, prefix
        self.extra = set(extra)

    @property
    def image(self) -> str:
        return f"corral/{self.name}"

    @property
    def env_names(self) -> set[str]:
        own = {f"{self.prefix}{n}" for n in ("HOST", "PORT", "DATABASE_URL")}
        return own | {f"{self.prefix}{n}" for n in self.extra} | SHARED_ENV

    @property
    def build_args(self) -> dict[str, str]:
        """The root Dockerfile's build arguments for this component (APT_PACKAGES aside)."""
        return {"PACKAGE": self.package, "MEMBER_DIR": self.member_dir, "SCRIPT": self.script,
                "ENV_PREFIX": self.prefix, "PORT": str(self.port)}

    def __repr__(self) -> str:
        return self.name


COMPONENTS = [
    Component("records-svc", "records-svc", "services/records-svc", "records-svc", 8101, "corral_records",
              "RECORDS_SVC_", []),
    Component("import-svc", "import-svc", "services/import-svc", "import-svc", 8102, "corral_imports",
              "IMPORT_SVC_", ["RECORDS_URL", "MERGE_URL", "FILE_STORE_DIR"]),
    Component("merge-svc", "merge-svc", "services/merge-svc", "merge-svc", 8103, "corral_merges",
              "MERGE_SVC_", ["RECORDS_URL", "SYNC_URL"]),
    Component("sync-svc", "sync-svc", "services/sync-svc", "sync-svc", 8104, "corral_sync",
              "SYNC_SVC_", ["RECORDS_URL", "ENCRYPTION_KEY", "FLUSH_INTERVAL_SECONDS", "POLL_INTERVAL_SECONDS"]),
    Component("gateway", "corral-gateway", "gateway", "corral-gateway", 8080, "corral_gateway", "GATEWAY_",
              ["RECORDS_URL", "IMPORTS_URL", "MERGES_URL", "SYNC_URL", "METRICS_PORT"]),
]
BY_NAME = {c.name: c for c in COMPONENTS}
SERVICES = [c for c in COMPONENTS if c.name != "gateway"]
EMULATOR_DIR = "tools/salesforce-emulator"
# Which service each internal URL must point at.
URL_TARGETS = {
    "RECORDS_URL": "records-svc", "IMPORTS_URL": "import-svc", "MERGES_URL": "merge-svc", "MERGE_URL": "merge-svc",
    "SYNC_URL": "sync-svc",
}
PROD_REPLICAS = {"gateway": 3, "records-svc": 2, "import-svc": 2, "merge-svc": 2, "sync-svc": 2}
OVERLAYS = ["dev", "prod"]
PROMETHEUS_OPERATOR_API = "monitoring.coreos.com/"
# The gateway serves Prometheus figures on a port of its own; the services on their API port.
EXTRA_PORTS = {"gateway": {"metrics": 9080}}


# ---- rendering helpers ---------------------------------------------------------------------------

@cache
def render(path: str) -> tuple[dict, ...]:
    # No skip without kubectl: a missing tool must not turn these checks green (Debian's `kubectl`).
    assert Path(KUBECTL).exists(), "kubectl is needed to render the kustomize overlays"
    result = subprocess.run([KUBECTL, "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    assert docs, f"{path} rendered nothing"
    return docs


def of_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def configmap(docs, name: str) -> dict:
    """A ConfigMap by its kustomize name (generated ones carry a hash suffix in the rendered output)."""
    found = [d for d in of_kind(docs, "ConfigMap") if re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?",
                                                                   d["metadata"]["name"])]
    assert len(found) == 1, f"expected one ConfigMap {name}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container_env(docs, pod_spec: dict) -> tuple[dict[str, str], dict[str, dict]]:
    """The container's environment as Kubernetes builds it: envFrom ConfigMaps, then env with $(VAR)."""
    (container,) = pod_spec["containers"]
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in cms, f"envFrom references missing ConfigMap {ref}"
        values.update(cms[ref])
    refs: dict[str, dict] = {}
    for var in container.get("env", []):
        if "valueFrom" in var:
            refs[var["name"]] = var["valueFrom"]
            values[var["name"]] = f"<{var['name']}>"
        else:
            values[var["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                         lambda m: values.get(m.group(1), m.group(0)), var["value"])
    return values, refs


def selects(selector: dict, labels: dict) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_templates(docs) -> list[tuple[str, dict]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"])
            for d in docs if d["kind"] in ("Deployment", "Job")]


# ---- Kubernetes: schema ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["base", "overlays/dev", "overlays/prod"])
def test_every_rendered_document_is_valid_kubernetes(path):
    errors = []
    for doc in render(path):
        if doc["apiVersion"].startswith(PROMETHEUS_OPERATOR_API):
            continue  # custom resources: checked against the Prometheus Operator's schemas in test_monitoring.py
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_strict_schema_validation_rejects_an_unknown_field():
    """Guards the test above: a typo in a manifest must not pass."""
    deployment = dict(named(render("overlays/prod"), "Deployment", "gateway"))
    deployment["spec"] = {**deployment["spec"], "replica": 3}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# ---- Kubernetes: workloads ---------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", COMPONENTS, ids=repr)
def test_deployment_probes_ports_and_resources(overlay, component):
    docs = render(f"overlays/{overlay}")
    deployment = named(docs, "Deployment", component.name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": component.port, **EXTRA_PORTS.get(component.name, {})}

    def probe_target(probe):
        get = container[probe]["httpGet"]
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        return get["path"], port

    assert probe_target("livenessProbe") == ("/livez", component.port)
    assert probe_target("readinessProbe") == ("/readyz", component.port)
    assert probe_target("startupProbe") == ("/livez", component.port)
    # A startup budget that lets a cold start (migrations are done elsewhere) finish.
    startup = container["startupProbe"]
    assert startup.get("failureThreshold", 3) * startup.get("periodSeconds", 10) >= 60

    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["limits"].keys()
    assert {"cpu", "memory"} <= resources["requests"].keys()

    service = named(docs, "Service", component.name)
    assert selects({"matchLabels": service["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"])
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports.keys() == ports.keys()
    for name, port in ports.items():
        assert service_ports[name]["port"] == port
        assert service_ports[name]["targetPort"] in (name, port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down(overlay):
    docs = render(f"overlays/{overlay}")
    templates = pod_templates(docs)
    assert len(templates) >= 2 * len(COMPONENTS)
    for where, template in templates:
        spec = template["spec"]
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] == 10001, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        # Service links would inject <SERVICE>_PORT=tcp://... and clobber the services' own settings.
        assert spec.get("enableServiceLinks") is False, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert "limits" in container["resources"], where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", COMPONENTS, ids=repr)
def test_deployment_environment_matches_the_service_settings(overlay, component):
    docs = render(f"overlays/{overlay}")
    deployment = named(docs, "Deployment", component.name)
    env, refs = container_env(docs, deployment["spec"]["template"]["spec"])

    assert set(env) == component.env_names | K8S_DB_PARTS
    assert env[f"{component.prefix}HOST"] == "0.0.0.0"
    assert env[f"{component.prefix}PORT"] == str(component.port)
    host, port, user = env["CORRAL_DB_HOST"], env["CORRAL_DB_PORT"], env["CORRAL_DB_USER"]
    assert env[f"{component.prefix}DATABASE_URL"] == (
        f"postgresql://{user}:<CORRAL_DB_PASSWORD>@{host}:{port}/{component.database}"
    )
    for suffix in component.extra & URL_TARGETS.keys():
        target = BY_NAME[URL_TARGETS[suffix]]
        assert env[f"{component.prefix}{suffix}"] == f"http://{target.name}:{target.port}"

    secret_vars = {name for name in env if name in SECRET_ENV}
    assert secret_vars == set(refs), "secrets come from secretKeyRef and nothing else does"
    for name, source in refs.items():
        assert source["secretKeyRef"]["key"] == SECRET_ENV[name]
        assert source["secretKeyRef"]["name"].startswith("corral-secrets")


def test_import_files_are_a_shared_volume():
    for overlay in OVERLAYS:
        docs = render(f"overlays/{overlay}")
        spec = named(docs, "Deployment", "import-svc")["spec"]["template"]["spec"]
        env, _ = container_env(docs, spec)
        (container,) = spec["containers"]
        mount = [m for m in container["volumeMounts"] if m["mountPath"] == env["IMPORT_SVC_FILE_STORE_DIR"]]
        assert mount, f"{overlay}: IMPORT_SVC_FILE_STORE_DIR is not a mounted volume"
        assert not mount[0].get("readOnly")
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount[0]["name"]]
        claim = named(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
        if overlay == "prod":
            # Several replicas on several nodes resume each other's imports.
            assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    base_claim = named(render("base"), "PersistentVolumeClaim", "import-files")
    assert base_claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", COMPONENTS, ids=repr)
def test_each_component_has_a_migration_job_like_its_deployment(overlay, component):
    docs = render(f"overlays/{overlay}")
    job = named(docs, "Job", f"{component.name}-migrate")
    deployment = named(docs, "Deployment", component.name)
    job_spec = job["spec"]["template"]["spec"]
    (job_container,) = job_spec["containers"]
    (app_container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert job_container["command"] == [f"{component.script}-migrate"]
    assert app_container["command"] == [component.script]
    assert job_container["image"] == app_container["image"]
    assert job_spec["restartPolicy"] in ("Never", "OnFailure")
    job_env, _ = container_env(docs, job_spec)
    app_env, _ = container_env(docs, deployment["spec"]["template"]["spec"])
    url = f"{component.prefix}DATABASE_URL"
    assert job_env[url] == app_env[url], "the migration must target the database the service uses"
    # Job pods must not be picked up by the Service.
    service = named(docs, "Service", component.name)
    assert not selects({"matchLabels": service["spec"]["selector"]}, job["spec"]["template"]["metadata"]["labels"])


def test_console_scripts_used_by_manifests_exist():
    for component in COMPONENTS:
        scripts = tomllib.loads((ROOT / component.member_dir / "pyproject.toml").read_text())["project"]["scripts"]
        assert component.script in scripts
        assert f"{component.script}-migrate" in scripts


@pytest.mark.parametrize("overlay,tag", [("dev", "dev"), ("prod", None)])
def test_images_are_the_corral_images_with_the_overlay_tag(overlay, tag):
    docs = render(f"overlays/{overlay}")
    for where, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            name, _, image_tag = container["image"].partition(":")
            assert re.fullmatch(r"corral/[a-z-]+", name), where
            assert image_tag, f"{where}: untagged image"
            if tag:
                assert image_tag == tag, where
            else:
                assert image_tag not in ("latest", "dev"), where


# ---- Kubernetes: secrets ------------------------------------------------------------------------------

def test_base_holds_no_secret_values():
    docs = render("base")
    assert not of_kind(docs, "Secret"), "the base must only reference corral-secrets"
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert "secretGenerator" not in kustomization
    text = "\n".join(p.read_text() for p in (K8S / "base").glob("*.yaml"))
    assert not re.search(r"^\s*(data|stringData):", text, re.M)


def test_prod_expects_an_existing_secret():
    docs = render("overlays/prod")
    assert not of_kind(docs, "Secret")
    keys = {
        ref["secretKeyRef"]["key"]
        for _, template in pod_templates(docs)
        for c in template["spec"]["containers"]
        for ref in (v.get("valueFrom") for v in c.get("env", []))
        if ref and "secretKeyRef" in ref and ref["secretKeyRef"]["name"] == "corral-secrets"
    }
    assert keys == SECRET_KEYS


def test_dev_generates_the_secret_the_pods_reference():
    docs = render("overlays/dev")
    (secret,) = of_kind(docs, "Secret")
    assert set(secret["data"]) == SECRET_KEYS
    for where, template in pod_templates(docs):
        for c in template["spec"]["containers"]:
            for var in c.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"], where
                    assert ref["key"] in secret["data"], where


# ---- Kubernetes: prod shape ------------------------------------------------------------------------------

def test_prod_replicas_autoscaling_and_disruption_budgets():
    docs = render("overlays/prod")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for name, replicas in PROD_REPLICAS.items():
        deployment = named(docs, "Deployment", name)
        assert deployment["spec"]["replicas"] == replicas, name
        hpa = hpas[name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        # An HPA floor below the replica count would undo the rollout's replica count.
        assert hpa["spec"]["minReplicas"] == replicas, name
        assert hpa["spec"]["maxReplicas"] > replicas, name
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budgets = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] == 1, name
        # The prod overlay gives more than base.
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (base_container,) = named(render("base"), "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert _mem(container["resources"]["limits"]["memory"]) >= _mem(base_container["resources"]["limits"]["memory"])


def test_dev_runs_single_replicas_without_budgets():
    docs = render("overlays/dev")
    for name in PROD_REPLICAS:
        assert named(docs, "Deployment", name)["spec"]["replicas"] == 1
    assert not of_kind(docs, "PodDisruptionBudget"), "minAvailable 1 with one replica blocks every node drain"
    assert not of_kind(docs, "HorizontalPodAutoscaler")


def _mem(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _allowed(policies, pod_labels: dict, direction: str) -> list[dict]:
    """Rules of the given direction that apply to a pod (union semantics of NetworkPolicy)."""
    key = "ingress" if direction == "Ingress" else "egress"
    return [rule for p in policies if direction in p["spec"]["policyTypes"]
            and selects(p["spec"]["podSelector"], pod_labels) for rule in p["spec"].get(key, [])]


def _ports(rule) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}


def test_prod_network_policies():
    docs = render("overlays/prod")
    policies = of_kind(docs, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) ==
            {"Ingress", "Egress"} and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "no default-deny policy"

    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in of_kind(docs, "Deployment")}
    gateway = pods["gateway"]

    # Anyone may reach the gateway on 8080.
    rules = _allowed(policies, gateway, "Ingress")
    assert any(not r.get("from") and ("TCP", 8080) in _ports(r) for r in rules)

    for svc in SERVICES:
        rules = _allowed(policies, pods[svc.name], "Ingress")
        assert rules, f"{svc.name} takes no traffic at all"
        for rule in rules:
            assert rule.get("from"), f"{svc.name} is open to everyone"
            assert _ports(rule) == {("TCP", svc.port)}, svc.name
        sources = {name for name, labels in pods.items()
                   if any(selects(peer["podSelector"], labels) for r in rules for peer in r["from"]
                          if "podSelector" in peer and "namespaceSelector" not in peer)}
        assert sources == {c.name for c in COMPONENTS}, svc.name
        # ...and the callers may send it.
        for caller in sources - {svc.name}:
            egress = _allowed(policies, pods[caller], "Egress")
            assert any(("TCP", svc.port) in _ports(r) and any(selects(peer.get("podSelector", {}), pods[svc.name])
                                                                for peer in r.get("to", []))
                       for r in egress), f"{caller} cannot call {svc.name}"

    # Every workload, migrations included, reaches DNS, Postgres and RabbitMQ.
    for where, template in pod_templates(docs):
        egress = _allowed(policies, template["metadata"]["labels"], "Egress")
        reachable = set().union(*(_ports(r) for r in egress))
        assert {("UDP", 53), ("TCP", 5432)} <= reachable, where
        if template["metadata"]["labels"]["app.kubernetes.io/component"] == "server":
            assert ("TCP", 5672) in reachable, where


# ---- docker compose -----------------------------------------------------------------------------------------

@cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_spec():
    exe = Path(sys.executable).with_name("check-jsonschema")
    cmd = [str(exe) if exe.exists() else "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
           str(ROOT / "docker-compose.yml")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


@pytest.mark.parametrize("component", COMPONENTS, ids=repr)
def test_compose_runs_migrations_before_each_component(component):
    services = compose()["services"]
    migrate = services[f"{component.name}-migrate"]
    assert migrate["command"] in ([f"{component.script}-migrate"], f"{component.script}-migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    assert f"/{component.database}" in _compose_env(migrate)[f"{component.prefix}DATABASE_URL"]

    app = services[component.name]
    deps = app["depends_on"]
    assert deps[f"{component.name}-migrate"]["condition"] == "service_completed_successfully"
    assert deps["rabbitmq"]["condition"] == "service_healthy"
    assert app["image"].split(":")[0] == migrate["image"].split(":")[0] == component.image
    # One Dockerfile for every component: the build arguments name the package, its script, settings and port.
    assert app["build"] == migrate["build"]
    assert app["build"]["context"] == "." and app["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / app["build"]["dockerfile"]).is_file()
    assert {k: str(v) for k, v in app["build"]["args"].items() if k != "APT_PACKAGES"} == component.build_args
    assert "/readyz" in " ".join(app["healthcheck"]["test"]) and f":{component.port}/" in " ".join(
        app["healthcheck"]["test"])

    env = _compose_env(app)
    assert set(env) == component.env_names
    assert env[f"{component.prefix}HOST"] == "0.0.0.0"
    assert env[f"{component.prefix}PORT"] == str(component.port)
    assert env[f"{component.prefix}DATABASE_URL"].endswith(f"@postgres:5432/{component.database}")
    assert env["CORRAL_AMQP_URL"].endswith("@rabbitmq:5672/")
    assert env["CORRAL_INTERNAL_SECRET"].startswith("${CORRAL_INTERNAL_SECRET:-")
    for suffix in component.extra & URL_TARGETS.keys():
        target = BY_NAME[URL_TARGETS[suffix]]
        assert env[f"{component.prefix}{suffix}"] == f"http://{target.name}:{target.port}"
    # Only the gateway is published.
    assert bool(app.get("ports")) == (component.name == "gateway")


def test_compose_gateway_infrastructure_and_emulator():
    spec = compose()
    services = spec["services"]
    gateway = services["gateway"]
    assert any(str(p).endswith(":8080") for p in gateway["ports"])
    for svc in SERVICES:
        assert gateway["depends_on"][svc.name]["condition"] == "service_healthy"
    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["rabbitmq"]["healthcheck"]["test"][-3:] == ["rabbitmq-diagnostics", "-q", "ping"]

    importer = services["import-svc"]
    store = _compose_env(importer)["IMPORT_SVC_FILE_STORE_DIR"]
    volume = [v for v in importer["volumes"] if str(v).endswith(f":{store}")]
    assert volume and volume[0].split(":")[0] in spec["volumes"], "import files need a named (shared) volume"
    assert _compose_env(services["sync-svc"])["SYNC_SVC_ENCRYPTION_KEY"].startswith("${SYNC_SVC_ENCRYPTION_KEY:-")

    emulator = services["salesforce-emulator"]
    assert {str(p).split(":")[-1] for p in emulator["ports"]} == {"8090", "8443"}
    assert emulator["build"]["dockerfile"] == f"{EMULATOR_DIR}/Dockerfile"
    assert ":8090/livez" in " ".join(emulator["healthcheck"]["test"])


# ---- Dockerfiles -------------------------------------------------------------------------------------------

def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> list[list[tuple[str, str]]]:
    """Stages of (INSTRUCTION, arguments), continuation lines joined, ARGs (given or default) substituted."""
    text = re.sub(r"\\\n", " ", path.read_text())
    given = build_args or {}
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []

    def substitute(rest: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), rest)

    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            args[name] = given.get(name, default.strip('"'))
            if not stages:
                continue
        rest = substitute(rest)
        if instruction == "FROM":
            stages.append([])
        assert stages, f"{path}: {instruction} before FROM"
        stages[-1].append((instruction, rest))
    return stages


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    return dict(word.split("=", 1) for ins, rest in stage if ins == "ENV" for word in shlex.split(rest))


def image_command(stage: list[tuple[str, str]]) -> list[str]:
    """The program the image runs, through a `sh -c 'exec "$VAR"'` CMD too."""
    cmd = [rest for ins, rest in stage if ins == "CMD"][-1]
    words = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)
    if words[:2] == ["/bin/sh", "-c"]:
        env = image_env(stage)
        words = shlex.split(re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), words[2]))
        if words[0] == "exec":
            words = words[1:]
    return words


def compose_build_args(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose()["services"][name]["build"]["args"].items()}


# The root Dockerfile with each component's compose build arguments, and the emulator's own.
DOCKER_COMPONENTS = [("Dockerfile", c.name, c.member_dir, c.package, c.script, c.port) for c in COMPONENTS] + [
    (f"{EMULATOR_DIR}/Dockerfile", "salesforce-emulator", EMULATOR_DIR, "salesforce-emulator", "salesforce-emulator",
     8090)]


@pytest.mark.parametrize("dockerfile,name,member_dir,package,script,port", DOCKER_COMPONENTS,
                         ids=[d[1] for d in DOCKER_COMPONENTS])
def test_dockerfile(dockerfile, name, member_dir, package, script, port):
    path = ROOT / dockerfile
    build = compose()["services"][name]["build"]
    assert build["dockerfile"] == dockerfile
    stages = parse_dockerfile(path, compose_build_args(name) if "args" in build else None)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    final = stages[-1]
    assert final[0][1].split()[0] == "python:3.11-slim"

    def last(stage, instruction):
        found = [rest for ins, rest in stage if ins == instruction]
        return found[-1] if found else None

    user = last(final, "USER")
    assert user and user.split(":")[0] not in ("root", "0"), "must not run as root"
    assert user.split(":")[0] in ("10001", "corral") and "10001" in " ".join(r for _, r in final)

    healthcheck = last(final, "HEALTHCHECK")
    assert healthcheck and "/livez" in healthcheck and "python" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck

    runs = " ".join(rest for stage in stages for ins, rest in stage if ins == "RUN")
    assert re.search(rf"uv sync --frozen --no-dev --package {re.escape(package)}(\s|$)", runs)
    scripts = tomllib.loads((ROOT / member_dir / "pyproject.toml").read_text())["project"]["scripts"]
    command = image_command(final)
    assert command[0] == script and script in scripts

    # Every file COPY'd from the build context exists (the context is the repository root).
    copied = []
    for stage in stages:
        for ins, rest in stage:
            if ins == "COPY" and "--from" not in rest:
                *sources, _dest = [a for a in rest.split() if not a.startswith("--")]
                for source in sources:
                    assert (ROOT / source).exists(), f"{path}: COPY {source} does not exist"
                    copied.append(source.rstrip("/"))
    assert member_dir in copied, "the component's own source tree must be in the image"

    env = image_env(final)
    assert [v for k, v in env.items() if k.endswith("HOST")] == ["0.0.0.0"], "bind to all interfaces in a container"
    assert str(port) in " ".join(rest for ins, rest in final if ins == "EXPOSE")
    if "CORRAL_PORT_VARIABLE" in env:  # the healthcheck probes the port the component's settings read
        assert env[env["CORRAL_PORT_VARIABLE"]] == str(port) and "CORRAL_PORT_VARIABLE" in healthcheck


def test_import_image_has_tesseract():
    """Business-card OCR: pytesseract runs Debian's tesseract, so import-svc's image installs it."""
    build_args = compose_build_args("import-svc")
    final = parse_dockerfile(ROOT / "Dockerfile", build_args)[-1]
    installs = " ".join(rest for ins, rest in final if ins == "RUN" and "apt-get install" in rest)
    assert "tesseract-ocr" in installs and "tesseract-ocr-eng" in installs
    others = [c.name for c in COMPONENTS if c.name != "import-svc"]
    assert not [n for n in others if "tesseract" in compose_build_args(n).get("APT_PACKAGES", "")]


@pytest.mark.parametrize("component", COMPONENTS, ids=repr)
def test_migrations_ship_in_the_image(component):
    """The migrate script reads <member>/alembic.ini and <member>/migrations from its source tree."""
    assert (ROOT / component.member_dir / "alembic.ini").is_file(), f"{component.member_dir}/alembic.ini missing"
    assert (ROOT / component.member_dir / "migrations").is_dir()
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert not [p for p in ignored if "alembic" in p or "migrations" in p]


def test_dockerignore_keeps_the_context_small():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", ".run", "bench/data"} <= ignored
    assert "**/__pycache__" in ignored or "__pycache__" in ignored
    assert "uv.lock" not in ignored and "pyproject.toml" not in ignored


# ---- Salesforce emulator (dev and demo only) -----------------------------------------------------------------

def _emulator_env_names() -> set[str]:
    from salesforce_emulator.settings import EmulatorSettings

    return {f"SF_EMULATOR_{field.upper()}" for field in EmulatorSettings.model_fields}


def test_emulator_is_dev_only_and_configured_with_its_real_settings():
    known = _emulator_env_names()
    assert not [d for d in render("overlays/prod") if "salesforce-emulator" in d["metadata"]["name"]]
    assert not [d for d in render("base") if "salesforce-emulator" in d["metadata"]["name"]]

    docs = render("overlays/dev")
    deployment = named(docs, "Deployment", "salesforce-emulator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v["value"] for v in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(env) <= known, f"unknown emulator settings: {set(env) - known}"
    assert env["SF_EMULATOR_HOST"] == "0.0.0.0"
    assert ports == {"http": int(env["SF_EMULATOR_HTTP_PORT"]), "https": int(env["SF_EMULATOR_HTTPS_PORT"])}
    assert env["SF_EMULATOR_CERT_DIR"].startswith("/tmp/"), "the root filesystem is read-only"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/livez", "port": "http"}

    compose_env = _compose_env(compose()["services"]["salesforce-emulator"])
    assert set(compose_env) <= known, f"unknown emulator settings: {set(compose_env) - known}"
    assert compose_env["SF_EMULATOR_HTTP_PORT"] == "8090" and compose_env["SF_EMULATOR_HTTPS_PORT"] == "8443"

    dockerfile_env = " ".join(r for ins, r in parse_dockerfile(ROOT / EMULATOR_DIR / "Dockerfile")[-1] if ins == "ENV")
    assert set(re.findall(r"(SF_EMULATOR_\w+)=", dockerfile_env)) <= known


def test_gateway_environment_is_what_gateway_settings_reads():
    """The gateway's settings have landed; the services' extra settings are checked by the table above."""
    from corral_gateway.settings import GatewaySettings

    declared = {f"GATEWAY_{field.upper()}" for field in GatewaySettings.model_fields}
    for overlay in OVERLAYS:
        docs = render(f"overlays/{overlay}")
        env, _ = container_env(docs, named(docs, "Deployment", "gateway")["spec"]["template"]["spec"])
        prefixed = {name for name in env if name.startswith("GATEWAY_")}
        assert prefixed <= declared, f"{overlay}: the gateway ignores {prefixed - declared}"
    compose_env = _compose_env(compose()["services"]["gateway"])
    assert {n for n in compose_env if n.startswith("GATEWAY_")} <= declared
