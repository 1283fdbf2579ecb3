"""Start the whole Corral suite: databases, migrations, gateway, four services and the Salesforce emulator.

`make run` uses it in the foreground on the default ports; the end-to-end tests and the benchmarks use
`Suite` to boot a private copy on free ports with throwaway databases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# The repository root (this package is installed from the workspace in editable mode).
ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("CORRAL_PG_URL", "postgresql://postgres@127.0.0.1:5432")

# name -> (console script, migrate script, env prefix, default port, default database)
SERVICES = {
    "records-svc": ("records-svc", "records-svc-migrate", "RECORDS_SVC_", 8101, "corral_records"),
    "import-svc": ("import-svc", "import-svc-migrate", "IMPORT_SVC_", 8102, "corral_imports"),
    "merge-svc": ("merge-svc", "merge-svc-migrate", "MERGE_SVC_", 8103, "corral_merges"),
    "sync-svc": ("sync-svc", "sync-svc-migrate", "SYNC_SVC_", 8104, "corral_sync"),
    "gateway": ("corral-gateway", "corral-gateway-migrate", "GATEWAY_", 8080, "corral_gateway"),
}


def sync_encryption_key_file() -> Path:
    """The local key sync-svc encrypts Salesforce secrets with, made once per checkout (`.run/`, not in git).

    Deployments set SYNC_SVC_ENCRYPTION_KEY from a Secret instead; losing the key means reconnecting.
    """
    path = ROOT / ".run" / "sync-encryption.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside then linked into place: suites starting at once agree on one key, never a half file.
        draft = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
        draft.write_bytes(Fernet.generate_key() + b"\n")
        draft.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Suite:
    """One running copy of the suite; `ports` and `databases` say where each part lives."""

    ports: dict[str, int] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    emulator_ports: tuple[int, int] = (8090, 8443)
    # The gateway serves its Prometheus figures here, never on its public port.
    gateway_metrics_port: int = 9080
    log_dir: Path = ROOT / ".run" / "logs"
    extra_env: dict[str, str] = field(default_factory=dict)
    # A private suite publishes to its own exchange (its consumers' queues are named after it and
    # expire once it stops), so several suites can share one broker.
    exchange: str | None = None
    # The emulator's admin API (plays the people and automation changing data in Salesforce): on for private
    # suites (tests, benchmarks), never on the default ports.
    emulator_admin: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, tag: str | None = None, **kw: object) -> Suite:
        tag = tag or f"e2e_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
        return cls(
            ports={name: free_port() for name in SERVICES},
            databases={name: f"{PG_URL}/corral_{tag}_{name.replace('-', '_')}" for name in SERVICES},
            emulator_ports=(free_port(), free_port()),
            gateway_metrics_port=free_port(),
            log_dir=ROOT / ".run" / "logs" / tag,
            exchange=f"corral.test.{tag}",
            emulator_admin=True,
            **kw,  # type: ignore[arg-type]
        )

    @classmethod
    def on_default_ports(cls) -> Suite:
        return cls(
            ports={name: int(os.environ.get(f"{spec[2]}PORT", spec[3])) for name, spec in SERVICES.items()},
            databases={name: os.environ.get(f"{spec[2]}DATABASE_URL", f"{PG_URL}/{spec[4]}")
                       for name, spec in SERVICES.items()},
            gateway_metrics_port=int(os.environ.get("GATEWAY_METRICS_PORT", 9080)),
        )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def metrics_url(self, name: str) -> str:
        """Where Prometheus scrapes a part: the services on their own port, the gateway on its metrics port."""
        if name == "gateway":
            return f"http://127.0.0.1:{self.gateway_metrics_port}/metrics"
        return f"{self.url(name)}/metrics"

    def env(self) -> dict[str, str]:
        # A suite started from the repository is a development one (it may use the default internal secret).
        env = {**os.environ, "CORRAL_LOG_JSON": os.environ.get("CORRAL_LOG_JSON", "true"),
               "CORRAL_ENV": os.environ.get("CORRAL_ENV", "development")}
        for name, (_, _, prefix, _, _) in SERVICES.items():
            env[f"{prefix}PORT"] = str(self.ports[name])
            env[f"{prefix}DATABASE_URL"] = self.databases[name]
        env.update({
            "GATEWAY_RECORDS_URL": self.url("records-svc"),
            "GATEWAY_IMPORTS_URL": self.url("import-svc"),
            "GATEWAY_MERGES_URL": self.url("merge-svc"),
            "GATEWAY_SYNC_URL": self.url("sync-svc"),
            "GATEWAY_METRICS_PORT": str(self.gateway_metrics_port),
            "IMPORT_SVC_RECORDS_URL": self.url("records-svc"),
            "IMPORT_SVC_MERGE_URL": self.url("merge-svc"),
            "MERGE_SVC_RECORDS_URL": self.url("records-svc"),
            "MERGE_SVC_SYNC_URL": self.url("sync-svc"),
            "SYNC_SVC_RECORDS_URL": self.url("records-svc"),
            "SF_EMULATOR_HTTP_PORT": str(self.emulator_ports[0]),
            "SF_EMULATOR_HTTPS_PORT": str(self.emulator_ports[1]),
            "SF_EMULATOR_CERT_DIR": str(ROOT / ".run"),
            "SF_EMULATOR_ENABLE_ADMIN": "true" if self.emulator_admin else "false",
        })
        if not env.get("SYNC_SVC_ENCRYPTION_KEY"):
            env["SYNC_SVC_ENCRYPTION_KEY_FILE"] = str(sync_encryption_key_file())
        if self.exchange:
            env["CORRAL_EXCHANGE"] = self.exchange
            env["CORRAL_QUEUE_EXPIRES_MS"] = str(10 * 60 * 1000)
        env.update(self.extra_env)
        return env

    def migrate(self) -> None:
        """Create every database that is missing and bring each to its newest schema."""
        env = self.env()
        for name, (_, migrate_script, _, _, _) in SERVICES.items():
            subprocess.run([str(BIN / migrate_script)], env=env, check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL if name else None)

    def create_token(self, account: str, *extra: str) -> str:
        return self._create_token(account, *extra).stdout.strip()

    def create_unlimited_token(self, account: str) -> tuple[str, int]:
        """A token without rate limits (benchmarks, load tests) and its account's numeric id."""
        out = self._create_token(account, "--rate-limit", "0", "--daily-limit", "0")
        found = re.search(r"\(id (\d+)\)", out.stderr)  # corral-admin reports the account on stderr
        if not found:
            raise RuntimeError(f"cannot read the account id from: {out.stderr!r}")
        return out.stdout.strip(), int(found.group(1))

    def _create_token(self, account: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "corral-admin"), "create-token", account, *extra], env=self.env(),
                              check=True, cwd=ROOT, capture_output=True, text=True)

    def start(self, *, foreground_logs: bool = False, with_emulator: bool = True) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        names = [*SERVICES, *(["salesforce-emulator"] if with_emulator else [])]
        for name in names:
            self.start_process(name, foreground_logs=foreground_logs)

    def start_process(self, name: str, *, extra_env: dict[str, str] | None = None,
                      foreground_logs: bool = False) -> subprocess.Popen[bytes]:
        """Start one part (again, after it stopped or was killed), with `extra_env` on top of the suite's."""
        command = [str(BIN / (SERVICES[name][0] if name in SERVICES else name))]
        output = None if foreground_logs else open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.processes[name] = subprocess.Popen(command, env={**self.env(), **(extra_env or {})}, cwd=ROOT,
                                                stdout=output, stderr=output, start_new_session=True)
        return self.processes[name]

    def wait_live(self, name: str, timeout: float = 60.0) -> None:
        """Until one service answers /livez (its routes are served)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / name}.log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url(name)}/livez", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not come up within {timeout:.0f}s")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / name}.log")
            try:
                response = httpx.get(f"{self.gateway_url}/readyz", timeout=3)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise RuntimeError(f"the suite was not ready after {timeout:.0f}s: {last}")

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.get(name)
        if process and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        for name in list(self.processes):
            self.stop_process(name)
        self.processes.clear()

    def drop_databases(self) -> None:
        from crm_common.db import drop_database

        async def drop_all() -> None:
            for url in self.databases.values():
                await drop_database(url)

        asyncio.run(drop_all())


def run_foreground() -> int:
    suite = Suite.on_default_ports()
    print("Preparing databases and migrations...", file=sys.stderr)
    suite.migrate()
    token = suite.create_token(os.environ.get("CORRAL_DEV_ACCOUNT", "dev"), "--name", "development")
    suite.start(foreground_logs=True)
    try:
        suite.wait_ready()
    except RuntimeError as exc:
        print(f"Corral did not start: {exc}", file=sys.stderr)
        suite.stop()
        return 1
    print(
        "\n"
        f"Corral is running. Gateway: {suite.gateway_url}\n"
        f"  API docs:       {suite.gateway_url}/docs\n"
        f"  OpenAPI:        {suite.gateway_url}/openapi.json\n"
        f"  Dev API token:  {token}\n"
        f"  Try:            curl -H 'Authorization: Bearer {token}' {suite.gateway_url}/crm/v3/objects/contacts\n"
        f"  Command line:   in another terminal, `source .venv/bin/activate`, then `corral --help`\n"
        f"  Metrics:        {suite.metrics_url('gateway')} (gateway), /metrics on each service\n"
        f"  Salesforce emulator: http://127.0.0.1:{suite.emulator_ports[0]} "
        f"(https {suite.emulator_ports[1]}, certificate .run/salesforce-emulator.crt)\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stopping:
            for name, process in suite.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the suite", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        suite.stop()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run", "migrate"])
    args = parser.parse_args()
    if args.command == "migrate":
        Suite.on_default_ports().migrate()
        sys.exit(0)
    sys.exit(run_foreground())


if __name__ == "__main__":
    main()
