"""Test helpers every service's suite uses: a real database per test session and signed requests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from crm_common.auth import AUTH_HEADER, AuthContext, sign_context
from crm_common.db import drop_database, prepare_database
from crm_common.settings import DEFAULT_INTERNAL_SECRET, DEFAULT_PG_URL

PG_URL = os.environ.get("CORRAL_TEST_PG_URL", DEFAULT_PG_URL)


def unique_exchange(prefix: str = "corral.test") -> str:
    """An events exchange of a test's own, so parallel runs on one broker never see each other's events.

    Pass it as `exchange=` to a service's settings (consumers prefix their queue names with it) and
    set `queue_expires_ms` so the queues a run leaves behind expire.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}.{worker}.{uuid.uuid4().hex[:8]}"


TEST_QUEUE_EXPIRES_MS = 10 * 60 * 1000


def unique_database_url(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{PG_URL}/{prefix}_{worker}_{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def migrated_database(service_dir: Path, prefix: str) -> AsyncIterator[str]:
    """A fresh database with the service's real migrations, dropped afterwards."""
    url = unique_database_url(prefix)
    await prepare_database(service_dir, url)
    try:
        yield url
    finally:
        await drop_database(url)


def signed_headers(account_id: int, *, scopes: list[str] | None = None, secret: str = DEFAULT_INTERNAL_SECRET,
                   caller: str = "gateway") -> dict[str, str]:
    context = AuthContext(account_id=account_id, scopes=scopes or ["*"], caller=caller)
    return {AUTH_HEADER: sign_context(context, secret)}


@asynccontextmanager
async def asgi_client(app: FastAPI, account_id: int | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client bound to the app in-process (lifespan included), signing as `account_id`."""
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        headers = signed_headers(account_id) if account_id is not None else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test",
                                     headers=headers, timeout=60) as client:
            yield client


@contextmanager
def recording_spans() -> Iterator[Any]:
    """Traces on for the apps created inside the block, their spans kept in memory; yields the exporter.

    `exporter.get_finished_spans()` lists them. Client instrumentation (httpx, asyncpg) is process-wide
    while the block lasts and removed after it, so other tests pay nothing for it.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from crm_common.observability import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=tracing.without_orphans(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_override(provider)
    tracing.install_client_instrumentation(provider)
    try:
        yield exporter
    finally:
        tracing.remove_client_instrumentation()
        tracing.set_override(None)
        provider.shutdown()


class Scrape:
    """A parsed `/metrics` answer: `scrape.value(name, **labels)` adds up the samples that match."""

    def __init__(self, text: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def has(self, name: str, **labels: str) -> bool:
        return any(s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
                   for s in self.samples)

    def labels(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}
