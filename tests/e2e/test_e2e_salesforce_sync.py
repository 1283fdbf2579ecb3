"""Salesforce sync end to end: the whole suite through the gateway against the emulator (its admin API plays the
people and automation changing Salesforce). Each test works in an account of its own on a freshly reset org."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from crm_common.settings import DEFAULT_AMQP_URL, to_plain_url
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.xdist_group("e2e")

API = "/services/data/v60.0"
SYNC = "/corral/v1/salesforce"
SECRET = "corral-emulator-secret"


class Org:
    """The emulator as people, automation and tests see it: its admin API and its data API."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=60)
        self.admin("POST", "/reset")
        self._login()

    def _login(self) -> None:
        token = self.http.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": "corral-emulator", "client_secret": SECRET}).json()
        self.token = token["access_token"]

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, f"/__emulator__{path}", **kw)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def query(self, soql: str) -> list[dict[str, Any]]:
        for _ in range(2):
            response = self.http.get(f"{API}/query", params={"q": soql},
                                     headers={"Authorization": f"Bearer {self.token}"})
            if response.status_code == 401:
                self._login()
                continue
            assert response.status_code == 200, response.text
            rows = []
            page = response.json()
            rows.extend(page["records"])
            while not page["done"]:
                page = self.http.get(page["nextRecordsUrl"], headers={"Authorization": f"Bearer {self.token}"}).json()
                rows.extend(page["records"])
            for row in rows:
                row.pop("attributes", None)
            return rows
        raise AssertionError("could not query the org")

    def sync_calls(self) -> int:
        """Data calls made by anyone but this test's own token: the sync's."""
        usage = self.admin("GET", "/api-usage")
        return usage["total"] - usage["byToken"].get(self.token, 0)


class Corral:
    def __init__(self, suite: Any, account: str) -> None:
        self.token = suite.create_token(account, "--rate-limit", "0")
        self.http = httpx.Client(base_url=suite.gateway_url, timeout=120,
                                 headers={"Authorization": f"Bearer {self.token}"})

    def call(self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def run(self) -> dict[str, Any]:
        return self.call("POST", f"{SYNC}/sync/run")

    def queued(self) -> int:
        return self.call("GET", f"{SYNC}/sync/status")["queuedChanges"]

    def wait_queued(self, count: int = 1, timeout: float = 30) -> None:
        wait_until(lambda: self.queued() >= count, timeout)

    def contact(self, record_id: str, *names: str) -> dict[str, Any]:
        return self.call("GET", f"/crm/v3/objects/contacts/{record_id}",
                         params={"properties": ",".join(names)})["properties"]

    def history(self, record_id: str, name: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/crm/v3/objects/contacts/{record_id}",
                         params={"propertiesWithHistory": name})["propertiesWithHistory"][name]

    def set_rule(self, prop: str, rule: str, field: str | None = None, object_type: str = "contacts") -> None:
        mappings = self.call("GET", f"{SYNC}/objects/{object_type}/mappings")["results"]
        existing = next((m for m in mappings if m["property"] == prop), None)
        if existing:
            self.call("PATCH", f"{SYNC}/objects/{object_type}/mappings/{existing['id']}", json={"syncRule": rule})
        else:
            self.call("POST", f"{SYNC}/objects/{object_type}/mappings",
                      json={"property": prop, "salesforceField": field, "syncRule": rule})


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def org(suite: Any) -> Org:
    return Org(f"http://127.0.0.1:{suite.emulator_ports[0]}")


@pytest.fixture
def corral(suite: Any) -> Corral:
    return Corral(suite, f"e2e-sync-{uuid.uuid4().hex[:8]}")


def connect(corral: Corral, org: Org, *objects: tuple[str, str]) -> dict[str, Any]:
    connected = corral.call("PUT", f"{SYNC}/connection", json={
        "loginUrl": org.base, "flow": "client_credentials", "clientId": "corral-emulator", "clientSecret": SECRET})
    for object_type, salesforce_object in objects:
        corral.call("PUT", f"{SYNC}/objects/{object_type}", json={"salesforceObject": salesforce_object})
    return connected


def test_connect_with_client_credentials_and_jwt_secrets_never_in_plain_text(suite, corral, org) -> None:
    refused = corral.call("PUT", f"{SYNC}/connection", expect=400, json={
        "loginUrl": org.base, "flow": "client_credentials", "clientId": "corral-emulator", "clientSecret": "nope"})
    assert "invalid client credentials" in refused["message"]
    connected = connect(corral, org)
    state = org.admin("GET", "/state")
    assert connected["status"] == "CONNECTED" and connected["userId"] == state["integrationUserId"]
    assert connected["instanceUrl"] == org.base and connected["apiVersion"] and connected["orgId"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    org.admin("POST", "/jwt-keys", json={"certificate": key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()})
    jwt = corral.call("PUT", f"{SYNC}/connection", json={
        "loginUrl": org.base, "flow": "jwt_bearer", "clientId": "corral-emulator",
        "username": "integration@corral-emulator.example", "privateKey": pem})
    assert jwt["status"] == "CONNECTED" and jwt["flow"] == "jwt_bearer"
    shown = corral.call("GET", f"{SYNC}/connection")
    assert shown["flow"] == "jwt_bearer"
    secrets = [SECRET, pem.splitlines()[1]]

    async def stored() -> bytes:
        conn = await asyncpg.connect(to_plain_url(suite.databases["sync-svc"]))
        try:
            rows = await conn.fetch("SELECT * FROM connections")
        finally:
            await conn.close()
        return b"".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                        for row in rows for v in row.values())

    table = asyncio.run(stored())
    assert table and not any(s.encode() in table for s in secrets)
    assert not any(s in json.dumps([refused, connected, jwt, shown]) for s in secrets)
    logs = b"".join(path.read_bytes() for path in suite.log_dir.glob("*.log") if path.name != "salesforce-emulator.log")
    assert not any(s.encode() in logs for s in secrets)
    # Every sync route is in the gateway's merged OpenAPI document.
    paths = httpx.get(f"{suite.gateway_url}/openapi.json", timeout=30).json()["paths"]
    for path in ("connection", "connection/authorize", "connection/callback", "objects", "objects/{objectType}",
                 "objects/{objectType}/mappings", "objects/{objectType}/mappings/{mappingId}", "sync/start",
                 "sync/pause", "sync/run", "sync/status", "budget", "records/{objectType}/{recordId}/resync",
                 "errors", "errors/{errorId}/retry"):
        assert f"{SYNC}/{path}" in paths, path


def test_contacts_and_companies_sync_both_ways_by_every_rule(corral, org) -> None:
    connect(corral, org, ("contacts", "Contact"), ("companies", "Account"))
    corral.set_rule("jobtitle", "ALWAYS_SALESFORCE")
    corral.set_rule("phone", "TWO_WAY")
    corral.set_rule("mobilephone", "DONT_SYNC")
    # Mapping refusals answer their status with a message a person understands.
    mismatch = corral.call("POST", f"{SYNC}/objects/contacts/mappings", expect=400,
                           json={"property": "hs_analytics_num_visits", "salesforceField": "Department"})
    assert "number" in mismatch["message"] and "string" in mismatch["message"]
    taken = corral.call("POST", f"{SYNC}/objects/contacts/mappings", expect=409,
                        json={"property": "industry", "salesforceField": "Email"})
    assert "Contact.Email is already mapped" in taken["message"]
    email_mapping = next(m for m in corral.call("GET", f"{SYNC}/objects/contacts/mappings")["results"]
                         if m["property"] == "email")
    standard = corral.call("DELETE", f"{SYNC}/objects/contacts/mappings/{email_mapping['id']}", expect=400)
    assert "DONT_SYNC" in standard["message"]
    corral.call("POST", f"{SYNC}/sync/start")

    record_id = corral.call("POST", "/crm/v3/objects/contacts", json={"properties": {
        "email": "grace@example.com", "firstname": "Grace", "lastname": "Hopper", "jobtitle": "Admiral",
        "phone": "111", "mobilephone": "999"}})["id"]
    company_id = corral.call("POST", "/crm/v3/objects/companies", json={"properties": {"name": "Navy"}})["id"]
    corral.wait_queued(2)
    summary = corral.run()
    assert summary["outbound"]["contacts"]["created"] == 1 and summary["outbound"]["companies"]["created"] == 1
    [row] = org.query("SELECT Id, Email, FirstName, LastName, Title, Phone, MobilePhone FROM Contact")
    assert (row["FirstName"], row["LastName"], row["Title"], row["Phone"], row["MobilePhone"]) == \
        ("Grace", "Hopper", None, "111", None)
    assert corral.contact(record_id, "salesforcecontactid")["salesforcecontactid"] == row["Id"]
    [account] = org.query("SELECT Id, Name FROM Account")
    company = corral.call("GET", f"/crm/v3/objects/companies/{company_id}",
                          params={"properties": "salesforceaccountid"})
    assert company["properties"]["salesforceaccountid"] == account["Id"]
    linked = corral.call("POST", "/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [
        {"propertyName": "salesforcecontactid", "operator": "EQ", "value": row["Id"]}]}]})
    assert [r["id"] for r in linked["results"]] == [record_id]

    # A change made in Salesforce by another user comes back with source SALESFORCE.
    org.admin("PATCH", f"/records/Contact/{row['Id']}", json={"fields": {
        "Title": "Rear Admiral", "FirstName": "Amazing Grace", "Phone": "222", "MobilePhone": "777"}})
    corral.run()
    after = corral.contact(record_id, "firstname", "jobtitle", "phone", "mobilephone")
    assert (after["firstname"], after["jobtitle"], after["phone"], after["mobilephone"]) == \
        ("Amazing Grace", "Rear Admiral", "222", "999")
    assert corral.history(record_id, "jobtitle")[0]["sourceType"] == "SALESFORCE"

    # Corral changes: two-way passes, prefer-Salesforce loses to a value, always-Salesforce never writes.
    corral.call("PATCH", f"/crm/v3/objects/contacts/{record_id}", json={"properties": {
        "firstname": "G", "phone": "333", "jobtitle": "Commodore"}})
    corral.wait_queued()
    corral.run()
    [row] = org.query("SELECT Id, FirstName, Title, Phone FROM Contact")
    assert (row["FirstName"], row["Title"], row["Phone"]) == ("Amazing Grace", "Rear Admiral", "333")
    assert corral.contact(record_id, "firstname")["firstname"] == "Amazing Grace"

    # Clears: from Salesforce for every rule but don't-sync, from Corral for two-way.
    org.admin("PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Title": None, "FirstName": None}})
    corral.run()
    after = corral.contact(record_id, "firstname", "jobtitle")
    assert after["firstname"] is None and after["jobtitle"] is None
    corral.call("PATCH", f"/crm/v3/objects/contacts/{record_id}", json={"properties": {"phone": "",
                                                                                     "firstname": "Gee"}})
    corral.wait_queued()
    corral.run()
    [row] = org.query("SELECT Id, FirstName, Phone FROM Contact")
    assert row["Phone"] is None and row["FirstName"] == "Gee"  # prefer-Salesforce writes into a blank

    # A two-way conflict goes to the later change, either way round.
    org.admin("PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Phone": "sf-first"}})
    corral.call("PATCH", f"/crm/v3/objects/contacts/{record_id}", json={"properties": {"phone": "corral-later"}})
    corral.wait_queued()
    corral.run()
    assert org.query("SELECT Phone FROM Contact")[0]["Phone"] == "corral-later"
    corral.call("PATCH", f"/crm/v3/objects/contacts/{record_id}", json={"properties": {"phone": "corral-first"}})
    corral.wait_queued()
    org.admin("POST", "/clock/advance", json={"seconds": 5})
    org.admin("PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Phone": "sf-later"}})
    corral.run()
    assert corral.contact(record_id, "phone")["phone"] == "sf-later"
    assert org.query("SELECT Phone FROM Contact")[0]["Phone"] == "sf-later"

    # Companies cannot be merged while company sync is on.
    other = corral.call("POST", "/crm/v3/objects/companies", json={"properties": {"name": "Army"}})["id"]
    refused = corral.call("POST", "/crm/v3/objects/companies/merge", expect=409,
                          json={"primaryObjectId": company_id, "objectIdToMerge": other})
    assert "Salesforce" in refused["message"]


async def _record_events(exchange: str, seconds: float, action: Callable[[], Any]) -> list[dict[str, Any]]:
    connection = await aio_pika.connect(DEFAULT_AMQP_URL)
    try:
        channel = await connection.channel()
        topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("", exclusive=True)
        await queue.bind(topic, routing_key="record.#")
        await asyncio.to_thread(action)
        await asyncio.sleep(seconds)
        events: list[dict[str, Any]] = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            payload = json.loads(message.body)
            events.extend(payload if isinstance(payload, list) else [payload])
        return events
    finally:
        await connection.close()


def test_loop_safety_idle_cycles_and_alternating_edits(suite, corral, org) -> None:
    connect(corral, org, ("contacts", "Contact"), ("companies", "Account"))
    corral.set_rule("jobtitle", "TWO_WAY")
    corral.call("POST", f"{SYNC}/sync/start")
    record_id = corral.call("POST", "/crm/v3/objects/contacts", json={"properties": {
        "email": "loop@example.com", "lastname": "Loop", "jobtitle": "v0"}})["id"]
    corral.wait_queued()
    corral.run()
    corral.run()
    account_id = corral.call("GET", f"/crm/v3/objects/contacts/{record_id}")["id"] and None
    del account_id
    before_rows = org.query("SELECT Id, LastModifiedDate, SystemModstamp, Title FROM Contact")
    before_history = corral.history(record_id, "jobtitle")
    calls_before = org.sync_calls()

    def idle_cycles() -> None:
        for _ in range(10):
            assert corral.run()["apiCalls"] <= 2 * 2  # at most 2 calls per enabled object per cycle

    events = asyncio.run(_record_events(suite.exchange, 1.0, idle_cycles))
    assert org.sync_calls() - calls_before <= 10 * 2 * 2
    assert [e for e in events if e.get("corralaccount") and e["data"].get("id") == record_id] == []
    assert org.query("SELECT Id, LastModifiedDate, SystemModstamp, Title FROM Contact") == before_rows
    assert corral.history(record_id, "jobtitle") == before_history

    state = org.admin("GET", "/state")
    salesforce_id = before_rows[0]["Id"]
    for i in range(1, 21):
        if i % 2:
            corral.call("PATCH", f"/crm/v3/objects/contacts/{record_id}", json={"properties": {"jobtitle": f"c{i}"}})
            corral.wait_queued()
            corral.run()
            [row] = org.query("SELECT Title, LastModifiedById FROM Contact")
            assert row == {"Title": f"c{i}", "LastModifiedById": state["integrationUserId"]}
        else:
            org.admin("PATCH", f"/records/Contact/{salesforce_id}", json={"fields": {"Title": f"s{i}"}})
            corral.run()
            [row] = org.query("SELECT Title, LastModifiedById FROM Contact")
            assert row == {"Title": f"s{i}", "LastModifiedById": state["adminUserId"]}
    corral.run()
    assert corral.contact(record_id, "jobtitle")["jobtitle"] == "s20"
    assert org.query("SELECT Title FROM Contact") == [{"Title": "s20"}]
    assert len(corral.history(record_id, "jobtitle")) == len(before_history) + 20


def test_faults_are_retried_or_paused_and_nothing_is_written_twice(corral, org) -> None:
    connect(corral, org, ("contacts", "Contact"))
    corral.call("POST", f"{SYNC}/sync/start")
    inputs = [{"properties": {"email": f"f{i}@example.com", "lastname": f"F{i}"}} for i in range(20)]
    corral.call("POST", "/crm/v3/objects/contacts/batch/create", json={"inputs": inputs})
    corral.wait_queued(20)
    org.admin("POST", "/faults", json={"kind": "REQUEST_LIMIT_EXCEEDED", "times": 1})
    assert corral.run()["stopped"] == "REQUEST_LIMIT_EXCEEDED"
    status = corral.call("GET", f"{SYNC}/sync/status")
    assert status["state"] == "PAUSED_API_LIMIT" and status["queuedChanges"] == 20
    org.admin("POST", "/faults", json={"kind": "UNABLE_TO_LOCK_ROW", "perRecord": True, "times": 5,
                                       "pathContains": "/composite/sobjects"})
    org.admin("POST", "/faults", json={"kind": "SERVICE_UNAVAILABLE", "times": 2})
    org.admin("POST", "/tokens/expire")
    summary = corral.run()
    assert summary["outbound"]["contacts"]["created"] == 20, summary
    rows = org.query("SELECT Id, Email FROM Contact")
    assert len(rows) == 20 and len({r["Email"] for r in rows}) == 20
    assert corral.call("GET", f"{SYNC}/sync/status")["state"] == "RUNNING"
    assert corral.call("GET", f"{SYNC}/errors")["results"] == []


def test_refused_values_are_listed_by_category_and_clear_when_fixed(corral, org) -> None:
    connect(corral, org, ("contacts", "Contact"))
    org.admin("POST", "/validation-rules", json={"object": "Contact", "condition": "Title = 'Forbidden'",
                                                 "message": "Title may not be Forbidden"})
    corral.call("POST", f"{SYNC}/sync/start")
    bad = {"long@example.com": ({"lastname": "L", "jobtitle": "x" * 200}, "PROPERTY_VALUES", {"jobtitle": "ok"}),
           "rule@example.com": ({"lastname": "R", "jobtitle": "Forbidden"}, "CUSTOM_CODE", {"jobtitle": "Fine"}),
           "noname@example.com": ({"firstname": "N"}, "PROPERTY_VALUES", {"lastname": "Named"})}
    ids = {email: corral.call("POST", "/crm/v3/objects/contacts", json={"properties": {"email": email, **props}})["id"]
           for email, (props, _, _) in bad.items()}
    corral.wait_queued(3)
    corral.run()
    errors = {e["recordId"]: e for e in corral.call("GET", f"{SYNC}/errors")["results"]}
    for email, (_, category, _) in bad.items():
        assert errors[ids[email]]["category"] == category and errors[ids[email]]["message"]
    assert "Title may not be Forbidden" in errors[ids["rule@example.com"]]["message"]
    assert corral.call("GET", f"{SYNC}/errors", params={"category": "CUSTOM_CODE"})["results"][0]["recordId"] \
        == ids["rule@example.com"]
    for email, (_, _, fix) in bad.items():
        corral.call("PATCH", f"/crm/v3/objects/contacts/{ids[email]}", json={"properties": fix})
    corral.wait_queued(3)
    corral.run()
    assert corral.call("GET", f"{SYNC}/errors")["results"] == []
    assert len(org.query("SELECT Id FROM Contact")) == 3


def test_kill_9_while_pushing_5000_new_contacts(suite, corral, org) -> None:
    connect(corral, org, ("contacts", "Contact"))
    corral.call("POST", f"{SYNC}/sync/start")
    # Slow the org down so the kill lands in the middle of the pushes.
    org.admin("POST", "/faults", json={"kind": "LATENCY", "latencyMs": 700, "times": -1, "pathContains": "/composite"})
    for start in range(0, 5000, 100):
        corral.call("POST", "/crm/v3/objects/contacts/batch/create", json={"inputs": [
            {"properties": {"email": f"k{i}@example.com", "lastname": f"K{i}"}} for i in range(start, start + 100)]})
    wait_until(lambda: 0 < len(org.query("SELECT Id FROM Contact")) < 5000, timeout=90)
    suite.stop_process("sync-svc", signal.SIGKILL)
    partial = len(org.query("SELECT Id FROM Contact"))
    assert 0 < partial < 5000
    org.admin("DELETE", "/faults")
    suite.start_process("sync-svc")
    wait_until(lambda: httpx.get(f"{suite.url('sync-svc')}/readyz", timeout=2).status_code == 200
               if _port_open(suite.url("sync-svc")) else False, timeout=60)

    def settled() -> bool:
        status = corral.call("GET", f"{SYNC}/sync/status")
        return status["queuedChanges"] == 0 and status["objects"][0]["linkedRecords"] == 5000

    wait_until(settled, timeout=180)
    rows = org.query("SELECT Id, Email FROM Contact")
    assert len(rows) == 5000 and len({r["Email"] for r in rows}) == 5000
    linked: set[str] = set()
    after = None
    while True:
        body: dict[str, Any] = {"properties": ["salesforcecontactid"], "limit": 200,
                                "filterGroups": [{"filters": [{"propertyName": "salesforcecontactid",
                                                               "operator": "HAS_PROPERTY"}]}]}
        if after:
            body["after"] = after
        page = corral.call("POST", "/crm/v3/objects/contacts/search", json=body)
        linked.update(r["properties"]["salesforcecontactid"] for r in page["results"])
        after = (page.get("paging") or {}).get("next", {}).get("after")
        if not after or len(linked) >= 5000:
            break
    assert linked == {r["Id"] for r in rows}


def _port_open(url: str) -> bool:
    try:
        httpx.get(f"{url}/livez", timeout=1)
        return True
    except httpx.HTTPError:
        return False
