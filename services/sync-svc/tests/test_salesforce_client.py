"""The Salesforce client against the emulator in-process: logins, re-login, accounting, retries, batching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from salesforce_emulator.app import create_app
from salesforce_emulator.settings import EmulatorSettings
from sync_svc.salesforce import auth
from sync_svc.salesforce.client import (
    RetryPolicy,
    RowWrite,
    SalesforceClient,
    SubRequest,
    _pack,
    parse_limit_info,
)
from sync_svc.salesforce.errors import (
    ApiLimitExceeded,
    LoginFailed,
    SalesforceApiError,
    SalesforceUnavailable,
)

BASE = "https://emu.my.salesforce.com"


@pytest.fixture
def emulator():
    return create_app(EmulatorSettings(enable_admin=True, page_size=3))


@pytest.fixture
async def http(emulator):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url=BASE) as client:
        yield client


def credentials(**changes) -> auth.Credentials:
    values = {"login_url": BASE, "flow": "client_credentials", "client_id": "corral-emulator",
              "client_secret": "corral-emulator-secret", **changes}
    return auth.Credentials(**values)


def client_for(http, calls: list[int] | None = None, **kw) -> SalesforceClient:
    async def count(n: int) -> None:
        if calls is not None:
            calls.append(n)

    return SalesforceClient(http=http, credentials=kw.pop("creds", credentials()), api_version="60.0",
                            on_call=count, retry=RetryPolicy(attempts=3, base_delay=0.01), **kw)


async def admin(http, method, path, **kw):
    response = await http.request(method, f"/__emulator__{path}", **kw)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def test_client_credentials_login_reads_identity_and_limits(http, emulator):
    calls: list[int] = []
    client = client_for(http, calls)
    session = await client.login()
    state = await admin(http, "GET", "/state")
    assert session.user_id == state["integrationUserId"]
    assert session.org_id == emulator.state.settings.org_id
    limits = await client.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    # One data call, counted by the ledger and by the org; the login is not a data call.
    assert calls == [1]
    assert client.limit_info is not None and client.limit_info.used == 1
    assert client.server_time is not None


async def test_login_failures_carry_salesforce_description(http):
    with pytest.raises(LoginFailed) as refused:
        await auth.login(http, credentials(client_secret="wrong"))
    assert refused.value.error == "invalid_client" and refused.value.description == "invalid client credentials"
    with pytest.raises(LoginFailed) as refused:
        await auth.login(http, credentials(flow="refresh_token", refresh_token="nope", client_secret=None))
    assert "expired access/refresh token" in refused.value.description


async def test_jwt_bearer_login(http):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    await admin(http, "POST", "/jwt-keys", json={"certificate": public})
    session = await auth.login(http, credentials(flow="jwt_bearer", client_secret=None,
                                                 username="integration@corral-emulator.example", private_key=pem))
    assert session.access_token
    with pytest.raises(LoginFailed):
        await auth.login(http, credentials(flow="jwt_bearer", username="nobody@example.com", private_key=pem))


async def test_authorization_code_flow_gives_a_refresh_token(http):
    url = auth.authorize_url(login_url=BASE, client_id="corral-emulator", redirect_uri="https://app.example/cb",
                             state="s1")
    redirect = await http.get(url)
    assert redirect.status_code == 302
    location = httpx.URL(redirect.headers["location"])
    assert location.params["state"] == "s1"
    session = await auth.exchange_code(http, login_url=BASE, client_id="corral-emulator",
                                       client_secret="corral-emulator-secret", code=location.params["code"],
                                       redirect_uri="https://app.example/cb")
    assert session.refresh_token
    again = await auth.login(http, credentials(flow="refresh_token", refresh_token=session.refresh_token))
    assert again.access_token != session.access_token


def test_login_url_rules():
    assert auth.check_login_url("https://login.salesforce.com/") == "https://login.salesforce.com"
    assert auth.check_login_url("http://127.0.0.1:8090") == "http://127.0.0.1:8090"
    assert auth.check_login_url("http://[::1]:8090") == "http://[::1]:8090"
    assert auth.check_login_url("http://localhost:8090") == "http://localhost:8090"
    for bad in ("http://example.com", "ftp://x", "https://user:pw@x.com", "login.salesforce.com",
                "https://x.com/?a=1", "http://10.0.0.1"):
        with pytest.raises(auth.InvalidLoginUrl):
            auth.check_login_url(bad)
    assert auth.jwt_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert auth.jwt_audience("https://acme--dev.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert auth.jwt_audience("http://127.0.0.1:9") == "http://127.0.0.1:9"


async def test_expired_session_logs_in_again_once(http):
    sessions = []

    async def keep(session):
        sessions.append(session)

    client = client_for(http, on_session=keep)
    await client.limits()
    await admin(http, "POST", "/tokens/expire")
    assert (await client.limits())["DailyApiRequests"]
    assert len(sessions) == 2 and sessions[0].access_token != sessions[1].access_token


def test_limit_info_parsing():
    info = parse_limit_info("api-usage=51/100000;per-app-api-usage=17/250(appName=x)")
    assert (info.used, info.max, info.per_app_used, info.per_app_max) == (51, 100000, 17, 250)
    assert parse_limit_info(None) is None and parse_limit_info("garbage") is None


async def test_request_limit_exceeded_is_not_retried(http):
    calls: list[int] = []
    client = client_for(http, calls)
    await admin(http, "POST", "/faults", json={"kind": "REQUEST_LIMIT_EXCEEDED", "times": 5})
    with pytest.raises(ApiLimitExceeded):
        await client.limits()
    assert len(calls) == 1


async def test_transient_failures_are_retried_with_backoff(http):
    calls: list[int] = []
    client = client_for(http, calls)
    await admin(http, "POST", "/faults", json={"kind": "SERVICE_UNAVAILABLE", "times": 2})
    assert (await client.limits())["DailyApiRequests"]
    assert len(calls) == 3
    await admin(http, "POST", "/faults", json={"kind": "SERVICE_UNAVAILABLE", "times": 5})
    with pytest.raises(SalesforceUnavailable):
        await client.limits()


async def test_retries_stop_when_the_budget_says_so(http):
    calls: list[int] = []
    client = client_for(http, calls, may_retry=lambda: False)
    await admin(http, "POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "times": 1})
    with pytest.raises(SalesforceUnavailable):
        await client.limits()
    assert len(calls) == 1


def test_composite_packing_respects_both_limits():
    heavy = [SubRequest("POST", "/composite/sobjects") for _ in range(12)]
    light = [SubRequest("GET", "/sobjects/Contact/updated?start=x") for _ in range(30)]
    assert [len(c) for c in _pack(heavy, range(12))] == [5, 5, 2]
    assert [len(c) for c in _pack(light, range(30))] == [25, 5]


async def test_collections_writes_pack_1000_rows_per_call(http, emulator):
    calls: list[int] = []
    client = client_for(http, calls)
    rows = [{"attributes": {"type": "Contact"}, "LastName": f"L{i}", "Email": f"c{i}@example.com"} for i in range(1200)]
    [created] = await client.write([RowWrite("create", rows)])
    assert all(r.success for r in created) and len({r.id for r in created}) == 1200
    assert len(calls) == 2  # 6 collections of 200: two composite calls (5 + 1)
    calls.clear()
    fetched = await client.retrieve("Contact", [r.id for r in created], ["Id", "Email"])
    assert len(fetched) == 1200 and len(calls) == 1
    calls.clear()
    updates = [{"attributes": {"type": "Contact"}, "Id": r.id, "Title": "VP"} for r in created[:10]]
    bad = {"attributes": {"type": "Contact"}, "Id": created[10].id, "Email": "not-an-email"}
    [result] = await client.write([RowWrite("update", [*updates, bad])])
    assert [r.success for r in result] == [True] * 10 + [False]
    assert result[10].errors[0].code == "INVALID_EMAIL_ADDRESS"
    assert len(calls) == 1


async def test_rows_locked_are_sent_again_alone(http):
    calls: list[int] = []
    client = client_for(http, calls)
    await admin(http, "POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "perRecord": True, "times": 3,
                                               "pathContains": "/composite/sobjects"})
    rows = [{"attributes": {"type": "Contact"}, "LastName": f"L{i}"} for i in range(10)]
    [created] = await client.write([RowWrite("create", rows)])
    assert all(r.success for r in created)
    found = await client.query("SELECT COUNT() FROM Contact")
    assert found.total_size == 10  # the locked rows were created once, on the second try
    assert len(calls) == 3  # the write, the retry of the three locked rows, the count


async def test_query_pages_and_first_pages_packed(http):
    client = client_for(http)
    await client.write([RowWrite("create", [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(7)])])
    pages = [p async for p in client.query_pages("SELECT Id, Name FROM Account ORDER BY Name")]
    assert [len(p.records) for p in pages] == [3, 3, 1]
    calls: list[int] = []
    client = client_for(http, calls)
    firsts = await client.query_first_pages(["SELECT Id FROM Account", "SELECT Id FROM Contact",
                                             "SELECT Nope FROM Account"])
    assert firsts[0].total_size == 7 and firsts[1].total_size == 0
    assert isinstance(firsts[2], SalesforceApiError) and firsts[2].code == "INVALID_FIELD"
    assert len(calls) == 1


async def test_describe_if_modified_since_and_server_clock(http):
    client = client_for(http)
    document = await client.describe("Contact")
    assert any(f["name"] == "Email" for f in document["fields"])
    assert await client.describe("Contact", if_modified_since=datetime.now(UTC) + timedelta(days=1)) is None
    await admin(http, "POST", "/clock/advance", json={"days": 2})
    await client.limits()
    assert client.server_time > datetime.now(UTC) + timedelta(days=1)


async def test_get_updated(http):
    client = client_for(http)
    start = datetime.now(UTC) - timedelta(minutes=1)
    [created] = await client.write([RowWrite("create", [{"attributes": {"type": "Contact"}, "LastName": "X"}])])
    answer = await client.updated("Contact", start, datetime.now(UTC) + timedelta(minutes=1))
    assert answer["ids"] == [created[0].id]
