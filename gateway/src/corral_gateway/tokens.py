"""Accounts and API tokens: generation, hashing, storage, and the in-memory lookup cache."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False),
    sa.Column("token_prefix", sa.Text, nullable=False),
    sa.Column("scopes", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("rate_limit_per_10s", sa.Integer),
    sa.Column("daily_limit", sa.Integer),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

TOKEN_PREFIX = "pat-corral-"
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8


def new_token() -> str:
    """Looks like a HubSpot private-app token; 32 random bytes (256 bits) after the prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # A plain SHA-256 is enough here, unlike for passwords: tokens carry 256 random bits, so nobody
    # can guess a preimage however fast the hash is, and a deterministic hash gives an indexed
    # lookup. A slow salted KDF only helps low-entropy secrets and would cost every request.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    id: int
    account_id: int
    name: str
    token_prefix: str
    scopes: tuple[str, ...]
    rate_limit_per_10s: int | None
    daily_limit: int | None
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def _record(row: sa.Row) -> TokenRecord:
    m = row._mapping
    return TokenRecord(
        id=m["id"], account_id=m["account_id"], name=m["name"], token_prefix=m["token_prefix"],
        scopes=tuple(m["scopes"]), rate_limit_per_10s=m["rate_limit_per_10s"], daily_limit=m["daily_limit"],
        created_at=m["created_at"], last_used_at=m["last_used_at"], revoked_at=m["revoked_at"],
    )


async def ensure_account(engine: AsyncEngine, *, name: str) -> int:
    async with engine.begin() as conn:
        stmt = postgresql.insert(accounts).values(name=name).on_conflict_do_nothing(index_elements=["name"])
        await conn.execute(stmt)
        return (await conn.execute(sa.select(accounts.c.id).where(accounts.c.name == name))).scalar_one()


async def create_token(
    engine: AsyncEngine,
    *,
    account: str,
    scopes: list[str],
    name: str = "",
    rate_limit_per_10s: int | None = None,
    daily_limit: int | None = None,
) -> tuple[str, TokenRecord]:
    """Creates the account if needed; the clear token exists only in the return value."""
    account_id = await ensure_account(engine, name=account)
    token = new_token()
    async with engine.begin() as conn:
        row = (await conn.execute(
            sa.insert(tokens).values(
                account_id=account_id, name=name, token_hash=hash_token(token),
                token_prefix=token[:DISPLAY_PREFIX_LENGTH], scopes=scopes,
                rate_limit_per_10s=rate_limit_per_10s, daily_limit=daily_limit,
            ).returning(*tokens.c)
        )).one()
    return token, _record(row)


async def list_tokens(engine: AsyncEngine, *, account: str) -> list[TokenRecord]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(tokens).join(accounts, accounts.c.id == tokens.c.account_id)
            .where(accounts.c.name == account).order_by(tokens.c.id)
        )
        return [_record(r) for r in rows]


class TokenNotFound(LookupError):
    pass


async def revoke_token(engine: AsyncEngine, *, key: str) -> TokenRecord:
    """`key` is a token id, a full token, or its display prefix (which must name exactly one token)."""
    if key.isdigit():
        where = tokens.c.id == int(key)
    elif key.startswith(TOKEN_PREFIX) and len(key) > DISPLAY_PREFIX_LENGTH:
        where = tokens.c.token_hash == hash_token(key)
    else:
        where = tokens.c.token_prefix == key
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.select(tokens.c.id).where(where))).scalars().all()
        if len(rows) != 1:
            raise TokenNotFound(f"{len(rows)} tokens match {key!r}; give the token id instead"
                                if rows else f"no token matches {key!r}")
        row = (await conn.execute(
            sa.update(tokens).where(tokens.c.id == rows[0])
            .values(revoked_at=sa.func.coalesce(tokens.c.revoked_at, sa.func.now())).returning(*tokens.c)
        )).one()
    return _record(row)


async def find_token(engine: AsyncEngine, *, token: str) -> TokenRecord | None:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(tokens).where(tokens.c.token_hash == hash_token(token)))).first()
    return _record(row) if row else None


async def touch_token(engine: AsyncEngine, *, token_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.update(tokens).where(tokens.c.id == token_id).values(last_used_at=sa.func.now()))


class TokenCache:
    """Token lookups cached for a short TTL, so a request rarely touches the database.

    The cost: a revoked token keeps working on a replica for at most `ttl` seconds. Unknown tokens
    are cached too (for the same TTL) so a client hammering with a bad token cannot load the DB.
    `last_used_at` is written in the background, at most once per `touch_interval` per token.
    """

    def __init__(self, engine: AsyncEngine, *, ttl: float, touch_interval: float) -> None:
        self._engine = engine
        self._ttl = ttl
        self._touch_interval = touch_interval
        self._entries: dict[str, tuple[float, TokenRecord | None]] = {}
        self._touched: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def lookup(self, token: str) -> TokenRecord | None:
        key = hash_token(token)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            record = await find_token(self._engine, token=token)
            if len(self._entries) > 100_000:  # bound memory against floods of random tokens
                self._entries.clear()
            self._entries[key] = (now + self._ttl, record)
        if record is not None and record.revoked_at is None:
            self._touch_later(record.id, now)
        return record

    def _touch_later(self, token_id: int, now: float) -> None:
        if now - self._touched.get(token_id, float("-inf")) < self._touch_interval:
            return
        self._touched[token_id] = now
        task = asyncio.create_task(self._touch(token_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(self, token_id: int) -> None:
        try:
            await touch_token(self._engine, token_id=token_id)
        except Exception:  # noqa: BLE001 - bookkeeping only; never fail or log-spam a request for it
            self._touched.pop(token_id, None)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
