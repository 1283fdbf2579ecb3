"""`corral-admin`: accounts and access tokens, straight against the gateway's database.

Only the requested value goes to stdout (`create-token` prints the token and nothing else), so
`TOKEN=$(corral-admin create-token dev)` works; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from crm_common.db import make_engine, prepare_database

from corral_gateway.scopes import ALL_SCOPES, parse_scopes
from corral_gateway.settings import GATEWAY_DIR, GatewaySettings
from corral_gateway.tokens import TokenNotFound, create_token, ensure_account, list_tokens, revoke_token


def _limit(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 (unlimited) or more")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral-admin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create-token", help="create an access token (and the account if needed)")
    create.add_argument("account", metavar="ACCOUNT")
    create.add_argument("--scopes", help=f"comma-separated; default all: {','.join(ALL_SCOPES)}")
    create.add_argument("--name", default="", help="a label for humans")
    create.add_argument("--rate-limit", type=_limit, default=None,
                        help="calls per rolling 10 s (0 = unlimited; default: the gateway's)")
    create.add_argument("--daily-limit", type=_limit, default=None,
                        help="calls per day (0 = unlimited; default: the gateway's)")

    listing = commands.add_parser("list-tokens", help="list an account's tokens (never the secrets)")
    listing.add_argument("account", metavar="ACCOUNT")

    revoke = commands.add_parser("revoke-token", help="revoke a token by id, display prefix or full token")
    revoke.add_argument("key", metavar="TOKEN_PREFIX_OR_ID")

    account = commands.add_parser("create-account", help="create an account (no-op if it exists)")
    account.add_argument("name", metavar="NAME")
    return parser


async def _run(args: argparse.Namespace, settings: GatewaySettings) -> int:
    scopes = parse_scopes(args.scopes) if args.command == "create-token" else []  # fail before touching the DB
    await prepare_database(GATEWAY_DIR, settings.database_url)
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        if args.command == "create-token":
            token, record = await create_token(
                engine, account=args.account, scopes=scopes, name=args.name,
                rate_limit_per_10s=args.rate_limit, daily_limit=args.daily_limit,
            )
            print(f"created token {record.id} ({record.token_prefix}...) for account {args.account} "
                  f"(id {record.account_id})", file=sys.stderr)
            print(token)
        elif args.command == "list-tokens":
            for r in await list_tokens(engine, account=args.account):
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                last = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
                limits = (f"{'default' if r.rate_limit_per_10s is None else r.rate_limit_per_10s}/10s "
                          f"{'default' if r.daily_limit is None else r.daily_limit}/day")
                print(f"{r.id}\t{r.token_prefix}...\t{r.name or '-'}\t{state}\tlast used {last}\t{limits}\t"
                      f"{','.join(r.scopes)}")
        elif args.command == "revoke-token":
            record = await revoke_token(engine, key=args.key)
            print(f"revoked token {record.id} ({record.token_prefix}...)", file=sys.stderr)
        elif args.command == "create-account":
            print(await ensure_account(engine, name=args.name))
    finally:
        await engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args, GatewaySettings()))
    except (ValueError, TokenNotFound) as exc:
        print(f"corral-admin: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
