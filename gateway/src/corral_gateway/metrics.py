"""The gateway's own figures, and the listener that serves them apart from the public port.

`/metrics` is never answered on the public port (there it is just an unrouted path). The figures are
served on `GATEWAY_METRICS_PORT` by prometheus-client's own HTTP server, which only the cluster's
Prometheus can reach (the network-policies and monitoring components). With several uvicorn workers,
each tries to bind the port: one wins and serves every worker's figures added up (multiprocess mode);
the others keep trying, so a worker that dies is replaced as the one that serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import structlog
from crm_common.observability.metrics import MULTIPROC_ENV, counter, histogram
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

log = structlog.get_logger(__name__)

REJECTIONS = counter(
    "corral_gateway_rejections",
    "Requests the gateway answered itself instead of forwarding, by reason",
    ["reason"],
)
UPSTREAM_FAILURES = counter(
    "corral_gateway_upstream_failures",
    "Forwarded requests that got no answer from the backend, by backend and kind",
    ["backend", "kind"],
)
UPSTREAM_DURATION = histogram(
    "corral_gateway_upstream_duration_seconds",
    "Time from forwarding a request to the backend's response headers",
    ["backend"],
)

RATE_LIMIT_LEASES = counter(
    "corral_gateway_rate_limit_leases",
    "Slices of token quotas leased from the shared store, by outcome (granted, exhausted, store_unavailable)",
    ["outcome"],
)

RETRY_BIND_SECONDS = 10.0


class MetricsListener:
    def __init__(self, *, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.port:
            self._task = asyncio.create_task(self._bind(), name="gateway-metrics-listener")

    async def _bind(self) -> None:
        while self._server is None:
            try:
                self._server, _ = start_http_server(self.port, addr=self.host, registry=_registry())
                log.info("metrics served", port=self.port)
            except OSError:  # another worker of this pod serves them
                await asyncio.sleep(RETRY_BIND_SECONDS)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server.server_close()


def _registry() -> Any:
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry
