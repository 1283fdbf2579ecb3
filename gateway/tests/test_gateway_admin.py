"""`corral-admin` as operators run it: a real process against the test database."""

from __future__ import annotations

import os
import re
import subprocess
import sys

TOKEN_RE = re.compile(r"pat-corral-[A-Za-z0-9_-]{43}")


def admin(gateway_db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from corral_gateway.admin import main; sys.exit(main())", *args],
        env={**os.environ, "GATEWAY_DATABASE_URL": gateway_db_url}, capture_output=True, text=True, timeout=60, check=False,
    )


async def test_create_list_revoke(gateway, gateway_db_url, client) -> None:
    created = admin(gateway_db_url, "create-token", "cli-account", "--scopes",
                    "crm.objects.contacts.read,crm.import", "--name", "ci", "--rate-limit", "5")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and TOKEN_RE.fullmatch(lines[0]), created.stdout
    token = lines[0]

    headers = {"Authorization": f"Bearer {token}"}
    ok = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers=headers)
    assert ok.status_code == 200 and ok.headers["X-HubSpot-RateLimit-Max"] == "5"
    assert (await client.get(f"{gateway.url}/crm/v3/objects/deals", headers=headers)).status_code == 403

    account = admin(gateway_db_url, "create-account", "cli-account")  # exists already: same id
    assert account.returncode == 0 and int(account.stdout) == ok.json()["auth"]["account_id"]

    listed = admin(gateway_db_url, "list-tokens", "cli-account")
    assert listed.returncode == 0
    assert token[:19] in listed.stdout and token not in listed.stdout  # the prefix only, never the secret
    assert "active" in listed.stdout
    token_id = listed.stdout.split("\t", 1)[0]

    revoked = admin(gateway_db_url, "revoke-token", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in admin(gateway_db_url, "list-tokens", "cli-account").stdout


async def test_default_scopes_are_all_scopes(gateway, gateway_db_url, client) -> None:
    created = admin(gateway_db_url, "create-token", "cli-defaults")
    assert created.returncode == 0 and TOKEN_RE.fullmatch(created.stdout.strip())
    headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
    for path in ("/corral/v1/sync/x", "/crm/v3/objects/2-7", "/crm-object-schemas/v3/schemas",
                 "/crm/v3/imports"):
        assert (await client.post(f"{gateway.url}{path}", headers=headers)).status_code == 200, path


def test_bad_input_prints_nothing_on_stdout(gateway_db_url) -> None:
    bad = admin(gateway_db_url, "create-token", "cli-defaults", "--scopes", "crm.objects.contacts.read,root")
    assert bad.returncode == 2 and bad.stdout == "" and "unknown scopes: root" in bad.stderr
    missing = admin(gateway_db_url, "revoke-token", "pat-corral-nothing")
    assert missing.returncode == 2 and missing.stdout == "" and "no token matches" in missing.stderr
