"""SQL for connections (one Salesforce org per account), their sync state and the API-call ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CONNECTION_COLUMNS = (
    "account_id, status, login_url, flow, client_id, username, secrets, session, instance_url, org_id, user_id, "
    "user_name, api_version, connected_at, disconnected_at, last_error, sync_state, started_at, suspended, "
    "suspended_until, suspended_reason, daily_api_calls, next_poll_at, last_cycle_at, last_cycle, updated_at")


async def get(session: AsyncSession, account_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    row = (await session.execute(
        text(f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE account_id = :a"
             + (" FOR UPDATE" if for_update else "")), {"a": account_id})).mappings().first()
    return dict(row) if row else None


async def save_connected(session: AsyncSession, *, account_id: int, login_url: str, flow: str, client_id: str,
                         username: str | None, secrets: bytes, sealed_session: bytes, instance_url: str,
                         org_id: str, user_id: str, user_name: str | None, api_version: str,
                         connected_at: datetime) -> dict[str, Any]:
    """Insert or replace the connection; the sync state and settings of an earlier connection stay."""
    row = (await session.execute(text(f"""
        INSERT INTO connections (account_id, status, login_url, flow, client_id, username, secrets, session,
                                 instance_url, org_id, user_id, user_name, api_version, connected_at, last_error)
        VALUES (:a, 'CONNECTED', :login_url, :flow, :client_id, :username, :secrets, :session, :instance_url,
                :org_id, :user_id, :user_name, :api_version, :connected_at, NULL)
        ON CONFLICT (account_id) DO UPDATE SET
            status = 'CONNECTED', login_url = excluded.login_url, flow = excluded.flow,
            client_id = excluded.client_id, username = excluded.username, secrets = excluded.secrets,
            session = excluded.session, instance_url = excluded.instance_url, org_id = excluded.org_id,
            user_id = excluded.user_id, user_name = excluded.user_name, api_version = excluded.api_version,
            connected_at = excluded.connected_at, disconnected_at = NULL, last_error = NULL,
            suspended = CASE WHEN connections.suspended = 'CONNECTION' THEN NULL ELSE connections.suspended END,
            suspended_reason = CASE WHEN connections.suspended = 'CONNECTION' THEN NULL
                                    ELSE connections.suspended_reason END,
            updated_at = now()
        RETURNING {CONNECTION_COLUMNS}"""), {
        "a": account_id, "login_url": login_url, "flow": flow, "client_id": client_id, "username": username,
        "secrets": secrets, "session": sealed_session, "instance_url": instance_url, "org_id": org_id,
        "user_id": user_id, "user_name": user_name, "api_version": api_version, "connected_at": connected_at,
    })).mappings().one()
    return dict(row)


async def save_pending_authorization(session: AsyncSession, *, account_id: int, login_url: str, client_id: str,
                                     secrets: bytes) -> dict[str, Any]:
    """The connected app an account brings for the authorization-code flow, before anyone has approved it."""
    row = (await session.execute(text(f"""
        INSERT INTO connections (account_id, status, login_url, flow, client_id, secrets)
        VALUES (:a, 'AUTHORIZATION_REQUIRED', :login_url, 'authorization_code', :client_id, :secrets)
        ON CONFLICT (account_id) DO UPDATE SET
            status = 'AUTHORIZATION_REQUIRED', login_url = excluded.login_url, flow = 'authorization_code',
            client_id = excluded.client_id, username = NULL, secrets = excluded.secrets, session = NULL,
            updated_at = now()
        RETURNING {CONNECTION_COLUMNS}"""), {"a": account_id, "login_url": login_url, "client_id": client_id,
                                             "secrets": secrets})).mappings().one()
    return dict(row)


async def store_session(session: AsyncSession, account_id: int, sealed_session: bytes) -> None:
    await session.execute(text("UPDATE connections SET session = :s, updated_at = now() WHERE account_id = :a"),
                          {"a": account_id, "s": sealed_session})


async def disconnect(session: AsyncSession, account_id: int) -> bool:
    """Forget the secrets and tokens; keep the settings (objects, mappings, links, budget) for a reconnect."""
    result = await session.execute(text("""
        UPDATE connections SET status = 'DISCONNECTED', secrets = NULL, session = NULL, disconnected_at = now(),
            updated_at = now()
        WHERE account_id = :a AND status <> 'DISCONNECTED'"""), {"a": account_id})
    return bool(result.rowcount)


async def mark_connection_failed(session: AsyncSession, account_id: int, message: str) -> None:
    await session.execute(text("""
        UPDATE connections SET status = 'ERROR', last_error = :m, suspended = 'CONNECTION',
            suspended_reason = :m, updated_at = now()
        WHERE account_id = :a"""), {"a": account_id, "m": message})


async def set_sync_state(session: AsyncSession, account_id: int, state: str, *, started: bool = False) -> None:
    await session.execute(text("""
        UPDATE connections SET sync_state = :s, updated_at = now(),
            started_at = CASE WHEN :started THEN now() ELSE started_at END,
            next_poll_at = CASE WHEN :started THEN now() ELSE next_poll_at END
        WHERE account_id = :a"""), {"a": account_id, "s": state, "started": started})


async def suspend(session: AsyncSession, account_id: int, *, kind: str, reason: str,
                  until: datetime | None) -> bool:
    """True when this suspends a sync that was not suspended for this reason already."""
    result = await session.execute(text("""
        UPDATE connections SET suspended = :k, suspended_reason = :r, suspended_until = :u, updated_at = now()
        WHERE account_id = :a AND suspended IS DISTINCT FROM :k"""), {"a": account_id, "k": kind, "r": reason,
                                                                      "u": until})
    if not result.rowcount:
        await session.execute(text("UPDATE connections SET suspended_reason = :r, suspended_until = :u "
                                   "WHERE account_id = :a"), {"a": account_id, "r": reason, "u": until})
    return bool(result.rowcount)


async def lift_suspension(session: AsyncSession, account_id: int, kind: str) -> bool:
    result = await session.execute(text("""
        UPDATE connections SET suspended = NULL, suspended_reason = NULL, suspended_until = NULL,
            updated_at = now()
        WHERE account_id = :a AND suspended = :k"""), {"a": account_id, "k": kind})
    return bool(result.rowcount)


async def set_budget(session: AsyncSession, account_id: int, daily_api_calls: int | None) -> None:
    await session.execute(text("UPDATE connections SET daily_api_calls = :b, updated_at = now() "
                               "WHERE account_id = :a"), {"a": account_id, "b": daily_api_calls})


async def record_cycle(session: AsyncSession, account_id: int, summary: dict[str, Any], *,
                       next_poll_at: datetime | None) -> None:
    await session.execute(text("""
        UPDATE connections SET last_cycle = CAST(:c AS jsonb), last_cycle_at = now(),
            next_poll_at = coalesce(:n, next_poll_at)
        WHERE account_id = :a"""), {"a": account_id, "c": _dumps(summary), "n": next_poll_at})


async def due_accounts(session: AsyncSession, *, flush_age_seconds: float, limit: int = 20) -> list[int]:
    """Accounts whose sync runs and has work now: a poll is due, or changes have waited `flush_age_seconds`."""
    rows = await session.execute(text("""
        SELECT c.account_id FROM connections c
        WHERE c.status = 'CONNECTED' AND c.sync_state = 'RUNNING'
          AND (c.suspended IS NULL OR c.suspended_until IS NULL OR c.suspended_until <= now())
          AND (c.next_poll_at IS NULL OR c.next_poll_at <= now()
               OR EXISTS (SELECT 1 FROM outbound_queue q WHERE q.account_id = c.account_id
                          AND q.next_attempt_at <= now()
                          AND q.queued_at <= now() - make_interval(secs => :age)))
        ORDER BY c.last_cycle_at NULLS FIRST
        LIMIT :l"""), {"l": limit, "age": flush_age_seconds})
    return [r[0] for r in rows]


async def all_sealed(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(text("SELECT account_id, secrets, session FROM connections "
                                      "WHERE secrets IS NOT NULL OR session IS NOT NULL"))
    return [dict(r) for r in rows.mappings()]


async def reseal(session: AsyncSession, account_id: int, secrets: bytes | None, sealed_session: bytes | None) -> None:
    await session.execute(text("UPDATE connections SET secrets = :s, session = :t WHERE account_id = :a"),
                          {"a": account_id, "s": secrets, "t": sealed_session})


# -- the API-call ledger -----------------------------------------------------------------------------------


async def count_calls(session: AsyncSession, account_id: int, calls: int) -> None:
    await session.execute(text("""
        INSERT INTO api_calls (account_id, minute, calls) VALUES (:a, date_trunc('minute', now()), :c)
        ON CONFLICT (account_id, minute) DO UPDATE SET calls = api_calls.calls + excluded.calls"""),
                          {"a": account_id, "c": calls})


async def calls_last_day(session: AsyncSession, account_id: int) -> int:
    return int((await session.execute(text(
        "SELECT coalesce(sum(calls), 0) FROM api_calls WHERE account_id = :a AND minute > now() - interval '24 hours'"),
        {"a": account_id})).scalar_one())


async def forget_old_calls(session: AsyncSession) -> None:
    await session.execute(text("DELETE FROM api_calls WHERE minute <= now() - interval '25 hours'"))


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()
