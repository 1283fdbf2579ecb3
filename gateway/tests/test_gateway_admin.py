"""`corral-admin` as operators run it: a real process against the test database."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass

import sqlalchemy as sa
from corral_gateway.tokens import tokens

TOKEN_RE = re.compile(r"pat-corral-[A-Za-z0-9_-]{43}")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def admin(gateway_db_url: str, *args: str) -> Result:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from corral_gateway.admin import main; sys.exit(main())", *args,
        env={**os.environ, "GATEWAY_DATABASE_URL": gateway_db_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


async def test_create_list_revoke(gateway, gateway_db_url, client, engine) -> None:
    created = await admin(gateway_db_url, "create-token", "cli-account", "--scopes",
                          "crm.objects.contacts.read,crm.import", "--name", "ci", "--rate-limit", "5")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and TOKEN_RE.fullmatch(lines[0]), created.stdout
    token = lines[0]

    headers = {"Authorization": f"Bearer {token}"}
    ok = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers=headers)
    assert ok.status_code == 200 and ok.headers["X-HubSpot-RateLimit-Max"] == "5"
    assert (await client.get(f"{gateway.url}/crm/v3/objects/deals", headers=headers)).status_code == 403

    # Independent commands run side by side: each process pays for imports and the migration check.
    listed, account = await asyncio.gather(admin(gateway_db_url, "list-tokens", "cli-account"),
                                           admin(gateway_db_url, "create-account", "cli-account"))
    assert account.returncode == 0 and int(account.stdout) == ok.json()["auth"]["account_id"]  # exists: same id
    assert listed.returncode == 0
    assert token[:19] in listed.stdout and token not in listed.stdout  # the prefix only, never the secret
    assert "active" in listed.stdout and "5/10s" in listed.stdout
    token_id = listed.stdout.split("\t", 1)[0]

    revoked = await admin(gateway_db_url, "revoke-token", token_id)
    assert revoked.returncode == 0, revoked.stderr
    async with engine.connect() as conn:
        revoked_at = (await conn.execute(sa.select(tokens.c.revoked_at).where(tokens.c.id == int(token_id)))).scalar()
    assert revoked_at is not None


async def test_default_scopes_and_bad_input(gateway, gateway_db_url, client) -> None:
    created, bad, missing = await asyncio.gather(
        admin(gateway_db_url, "create-token", "cli-defaults"),
        admin(gateway_db_url, "create-token", "cli-defaults", "--scopes", "crm.objects.contacts.read,root"),
        admin(gateway_db_url, "revoke-token", "pat-corral-nothing"),
    )
    assert created.returncode == 0 and TOKEN_RE.fullmatch(created.stdout.strip())
    headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
    for path in ("/corral/v1/sync/x", "/crm/v3/objects/2-7", "/crm-object-schemas/v3/schemas",
                 "/crm/v3/imports"):
        assert (await client.post(f"{gateway.url}{path}", headers=headers)).status_code == 200, path

    assert bad.returncode == 2 and bad.stdout == "" and "unknown scopes: root" in bad.stderr
    assert missing.returncode == 2 and missing.stdout == "" and "no token matches" in missing.stderr
