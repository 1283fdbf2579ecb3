"""Contract suite: unmodified simple-salesforce against the emulator over real https with its certificate."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from salesforce_emulator import ids
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from .conftest import CLIENT_ID, CLIENT_SECRET, LiveEmulator


def tls_session(live: LiveEmulator) -> requests.Session:
    session = requests.Session()
    session.verify = str(live.certificate)
    # Otherwise REQUESTS_CA_BUNDLE from the environment silently replaces `verify`.
    session.trust_env = False
    return session


@pytest.fixture(scope="module")
def sf(live_emulator: LiveEmulator) -> Iterator[Salesforce]:
    session = tls_session(live_emulator)
    admin = f"{live_emulator.base_url}/__emulator__"
    response = session.post(f"{admin}/objects/Contact/fields",
                            json={"name": "External_Id__c", "type": "string", "length": 40, "externalId": True})
    assert response.status_code == 201, response.text
    # simple-salesforce logs in at https://{domain}.salesforce.com/...; a domain ending in '#' turns the
    # '.salesforce.com/...' tail into a URL fragment, which is never sent, so the unmodified client reaches us.
    client = Salesforce(consumer_key=CLIENT_ID, consumer_secret=CLIENT_SECRET,
                        domain=f"127.0.0.1:{live_emulator.port}/services/oauth2/token#", session=session)
    yield client
    session.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_client_credentials_login_points_client_at_emulator(sf: Salesforce, live_emulator: LiveEmulator) -> None:
    assert sf.sf_instance == f"127.0.0.1:{live_emulator.port}"
    assert sf.session_id.startswith("00D")


def test_describe_global_and_object(sf: Salesforce) -> None:
    names = {entry["name"] for entry in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Lead", "Opportunity", "User"} <= names
    contact = sf.Contact.describe()
    fields = {field["name"]: field for field in contact["fields"]}
    assert fields["LastName"]["nillable"] is False and fields["LastName"]["createable"] is True
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["External_Id__c"]["externalId"] is True
    newest = sf.Account.create({"Name": unique("recent")})["id"]
    metadata = sf.Account.metadata()
    assert metadata["objectDescribe"]["keyPrefix"] == "001"
    assert metadata["recentItems"][0]["Id"] == newest


def test_query_all_follows_cursors_across_pages(sf: Salesforce) -> None:
    tag = unique("paged")
    for number in range(5):
        sf.Account.create({"Name": f"{tag}-{number}"})
    first = sf.query(f"SELECT Id, Name FROM Account WHERE Name LIKE '{tag}%' ORDER BY Name")
    assert first["done"] is False and first["totalSize"] == 5 and len(first["records"]) == 2
    everything = sf.query_all(f"SELECT Id, Name FROM Account WHERE Name LIKE '{tag}%' ORDER BY Name DESC")
    assert [record["Name"] for record in everything["records"]] == [f"{tag}-{n}" for n in (4, 3, 2, 1, 0)]


def test_create_get_update_delete(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": unique("crud")})["id"]
    created = sf.Contact.create({"LastName": "Lovelace", "FirstName": "Ada", "AccountId": account_id})
    assert created["success"] is True
    contact_id = created["id"]
    fetched = sf.Contact.get(contact_id)
    assert fetched["Name"] == "Ada Lovelace" and fetched["AccountId"] == account_id
    assert sf.Contact.update(contact_id, {"Title": "Countess"}) == 204
    assert sf.Contact.get(contact_id)["Title"] == "Countess"
    assert sf.Contact.delete(contact_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as deleted:
        sf.Contact.get(contact_id)
    assert deleted.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_get_and_upsert_by_external_id(sf: Salesforce) -> None:
    external_id = unique("ext")
    assert sf.Contact.upsert(f"External_Id__c/{external_id}", {"LastName": "First"}) == 201
    assert sf.Contact.upsert(f"External_Id__c/{external_id}", {"LastName": "Second"}) == 200
    fetched = sf.Contact.get_by_custom_id("External_Id__c", external_id)
    assert fetched["LastName"] == "Second" and fetched["External_Id__c"] == external_id


def test_external_id_matching_two_records_is_300(sf: Salesforce) -> None:
    shared = unique("dup")
    sf.Contact.create({"LastName": "One", "External_Id__c": shared})
    sf.Contact.create({"LastName": "Two", "External_Id__c": shared})
    with pytest.raises(SalesforceMoreThanOneRecord) as multiple:
        sf.Contact.get_by_custom_id("External_Id__c", shared)
    assert len(multiple.value.content) == 2


def test_updated_and_deleted_windows(sf: Salesforce) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    kept = sf.Contact.create({"LastName": "Kept"})["id"]
    gone = sf.Contact.create({"LastName": "Gone"})["id"]
    sf.Contact.delete(gone)
    end = datetime.now(UTC) + timedelta(minutes=2)
    updated = sf.Contact.updated(start, end)
    assert kept in updated["ids"] and gone not in updated["ids"]
    assert updated["latestDateCovered"].endswith("+0000")
    deleted = sf.Contact.deleted(start, end)
    assert gone in [entry["id"] for entry in deleted["deletedRecords"]]
    assert kept not in [entry["id"] for entry in deleted["deletedRecords"]]


def test_limits_and_api_usage_header(sf: Salesforce) -> None:
    limits = sf.limits()
    daily = limits["DailyApiRequests"]
    used_by_limits = daily["Max"] - daily["Remaining"]
    assert used_by_limits >= 1
    sf.query("SELECT Id FROM Account LIMIT 1")
    usage = sf.api_usage["api-usage"]
    assert usage.total == daily["Max"]
    assert usage.used == used_by_limits + 1


def test_collections_through_restful(sf: Salesforce) -> None:
    tag = unique("coll")
    created = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": f"{tag}-a"},
        {"attributes": {"type": "Account"}},
    ]})
    assert created[0]["success"] is True
    assert created[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    account_id = created[0]["id"]
    fetched = sf.restful("composite/sobjects/Account", params={"ids": account_id, "fields": "Id,Name"})
    assert fetched[0]["Name"] == f"{tag}-a"
    removed = sf.restful("composite/sobjects", method="DELETE", params={"ids": account_id})
    assert removed == [{"id": account_id, "success": True, "errors": []}]


def test_client_raises_its_exceptions_for_401_404_400(sf: Salesforce, live_emulator: LiveEmulator) -> None:
    stale = Salesforce(instance_url=live_emulator.base_url, session_id="00D000000000000!bogus",
                       session=tls_session(live_emulator))
    with pytest.raises(SalesforceExpiredSession) as expired:
        stale.query("SELECT Id FROM Account")
    assert expired.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(ids.to_18("003000000000000"))
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELEKT Id FROM Account")
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_expired_session_is_renewed_by_client(sf: Salesforce, live_emulator: LiveEmulator) -> None:
    old_session = sf.session_id
    live_emulator.org.connected_app.expire_all()
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] >= 2
    assert sf.session_id != old_session


def test_bulk2_ingest_and_query(sf: Salesforce) -> None:
    tag = unique("bulk")
    records = [{"LastName": f"{tag}-{n}", "Email": f"{tag}.{n}@example.com"} for n in range(5)]
    records.append({"LastName": "", "Email": "nolastname@example.com"})
    [outcome] = sf.bulk2.Contact.insert(records=records, wait=0)
    assert (outcome["numberRecordsProcessed"], outcome["numberRecordsFailed"]) == (6, 1)
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_failed_records(outcome["job_id"]))))
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]")
    succeeded = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(outcome["job_id"]))))
    assert [row["sf__Created"] for row in succeeded] == ["true"] * 5
    chunks = list(sf.bulk2.Contact.query(
        f"SELECT Id, LastName, Account.Name FROM Contact WHERE LastName LIKE '{tag}%' ORDER BY LastName",
        max_records=2, wait=0))
    rows = [row for chunk in chunks for row in csv.DictReader(io.StringIO(chunk))]
    assert len(chunks) == 3
    assert [row["LastName"] for row in rows] == [f"{tag}-{n}" for n in range(5)]
    assert {row["Id"] for row in rows} == {row["sf__Id"] for row in succeeded}
    assert rows[0]["Account.Name"] == ""


def test_jwt_bearer_login(live_emulator: LiveEmulator) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    session = tls_session(live_emulator)
    registered = session.post(f"{live_emulator.base_url}/__emulator__/jwt-keys", json={"certificate": public_pem})
    assert registered.status_code == 201
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    client = Salesforce(username="integration@corral-emulator.example", consumer_key=CLIENT_ID,
                        privatekey=private_pem, domain=f"127.0.0.1:{live_emulator.port}/services/oauth2/token#",
                        session=session)
    assert client.query("SELECT Username FROM User WHERE Username LIKE 'integration%'")["totalSize"] == 1
