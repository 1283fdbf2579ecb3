"""A consumer handles each event once, however often the broker delivers it, and only once committed."""

from __future__ import annotations

from pathlib import Path

import pytest
from crm_common.cloudevents import CloudEvent
from crm_common.consumer import handle_once
from crm_common.db import make_engine, make_sessionmaker
from crm_common.testing import migrated_database
from sqlalchemy import text

SERVICE_DIR = Path(__file__).resolve().parents[3] / "services" / "merge-svc"


async def test_redelivered_events_are_handled_once_and_failures_are_retried() -> None:
    async with migrated_database(SERVICE_DIR, "corral_inbox_test") as url:
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        calls: list[str] = []

        async def handler(session, event: CloudEvent) -> None:  # type: ignore[no-untyped-def]
            calls.append(event.id)
            await session.execute(text("SELECT 1"))

        event = CloudEvent(source="test", type="record.merged", corralaccount=1, data={})
        try:
            assert await handle_once(sessions, "merge-svc.test", event, handler) is True
            assert await handle_once(sessions, "merge-svc.test", event, handler) is False
            assert await handle_once(sessions, "sync-svc.test", event, handler) is True  # another consumer
            assert calls == [event.id, event.id]

            async def failing(session, event: CloudEvent) -> None:  # type: ignore[no-untyped-def]
                raise RuntimeError("downstream unavailable")

            second = CloudEvent(source="test", type="record.merged", corralaccount=1, data={})
            with pytest.raises(RuntimeError):
                await handle_once(sessions, "merge-svc.test", second, failing)
            # The failed attempt left no inbox row, so the redelivery is handled.
            assert await handle_once(sessions, "merge-svc.test", second, handler) is True
        finally:
            await engine.dispose()
