"""The official hubspot-api-client SDK, pointed at the gateway, works unchanged."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyCreate
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException

pytestmark = pytest.mark.xdist_group("e2e-api")


def unique_email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def test_contact_lifecycle_through_the_sdk(hubspot) -> None:  # type: ignore[no-untyped-def]
    email = unique_email("sdk")
    created = hubspot.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": email, "firstname": "Grace", "lastname": "Hopper"}))
    assert created.id and created.properties["email"] == email

    fetched = hubspot.crm.contacts.basic_api.get_by_id(created.id, properties=["firstname", "email"])
    assert fetched.properties["firstname"] == "Grace"

    updated = hubspot.crm.contacts.basic_api.update(created.id, SimplePublicObjectInput(properties={"firstname": "G."}))
    assert updated.properties["firstname"] == "G."

    with pytest.raises(ApiException) as conflict:
        hubspot.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": email}))
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["message"] == f"Contact already exists. Existing ID: {created.id}"

    hubspot.crm.contacts.basic_api.archive(created.id)
    with pytest.raises(NotFoundException):
        hubspot.crm.contacts.basic_api.get_by_id(created.id)


def test_batch_upsert_search_and_paging(hubspot) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    emails = [f"batch{i}-{tag}@example.com" for i in range(12)]
    hubspot.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": emails[0],
                                                                                      "firstname": "before"}))
    result = hubspot.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        SimplePublicObjectBatchInputUpsert(id=e, id_property="email", properties={"lastname": tag, "firstname": "after"})
        for e in emails]))
    assert result.status == "COMPLETE"
    assert sorted(r.new for r in result.results) == [False] + [True] * 11

    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="lastname", operator="EQ", value=tag)])],
        properties=["email", "firstname"], limit=5)
    page = hubspot.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert page.total == 12 and len(page.results) == 5
    assert {r.properties["firstname"] for r in page.results} == {"after"}

    token_search = hubspot.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="CONTAINS_TOKEN",
                                                   value=f"batch3-{tag}*")])]))
    assert [r.properties["email"] for r in token_search.results] == [emails[3]]

    everyone = hubspot.crm.contacts.get_all(properties=["lastname", "email"])
    assert {c.properties["email"] for c in everyone if c.properties.get("lastname") == tag} == set(emails)


def test_companies_through_the_sdk(hubspot) -> None:  # type: ignore[no-untyped-def]
    name = f"Acme {uuid.uuid4().hex[:6]}"
    company = hubspot.crm.companies.basic_api.create(CompanyCreate(properties={"name": name, "domain": "acme.io"}))
    # Other tests share the account: page through all of it (the SDK follows paging.next.after).
    everything = hubspot.crm.companies.get_all(properties=["name", "domain"])
    assert any(c.id == company.id and c.properties["domain"] == "acme.io" for c in everything)
    from hubspot.crm.companies import Filter as CFilter
    from hubspot.crm.companies import FilterGroup as CFilterGroup
    from hubspot.crm.companies import PublicObjectSearchRequest as CSearch

    found = hubspot.crm.companies.search_api.do_search(public_object_search_request=CSearch(
        filter_groups=[CFilterGroup(filters=[CFilter(property_name="name", operator="EQ", value=name)])]))
    assert [c.id for c in found.results] == [company.id]


def test_accounts_are_isolated(hubspot, hubspot_other) -> None:  # type: ignore[no-untyped-def]
    email = unique_email("mine")
    mine = hubspot.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": email}))
    with pytest.raises(NotFoundException):
        hubspot_other.crm.contacts.basic_api.get_by_id(mine.id)
    with pytest.raises(NotFoundException):
        hubspot_other.crm.contacts.basic_api.update(mine.id, SimplePublicObjectInput(properties={"firstname": "x"}))
    hubspot_other.crm.contacts.basic_api.archive(mine.id)  # HubSpot answers 204 for ids it does not know
    assert hubspot.crm.contacts.basic_api.get_by_id(mine.id).archived is False
    theirs = hubspot_other.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value=email)])]))
    assert theirs.total == 0
    # The same email is free in the other account.
    hubspot_other.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": email}))


def test_bad_input_gets_hubspot_errors_through_the_gateway(suite, token) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    base = suite.gateway_url
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        cases = [
            (client.post("/crm/v3/objects/contacts", content=b"{", headers={"content-type": "application/json"}), 400),
            (client.post("/crm/v3/objects/contacts", json={"properties": {"unknown_prop": "1"}}), 400),
            (client.post("/crm/v3/objects/companies", json={"properties": {"annualrevenue": "lots"}}), 400),
            (client.post("/crm/v3/objects/contacts", json={"properties": {"lifecyclestage": "royalty"}}), 400),
            (client.get("/crm/v3/objects/unicorns"), 400),
            (client.get("/crm/v3/objects/contacts/not-a-number"), 400),  # an id must be a number (issue 16)
            (client.post("/crm/v3/objects/contacts/batch/create",
                         json={"inputs": [{"properties": {}} for _ in range(101)]}), 400),
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            body = response.json()
            assert body["status"] == "error" and body["message"] and body["correlationId"] and body["category"]
    missing = httpx.get(f"{base}/crm/v3/objects/contacts", timeout=30)
    assert missing.status_code == 401
    invalid = httpx.get(f"{base}/crm/v3/objects/contacts", headers={"Authorization": "Bearer pat-nope"}, timeout=30)
    assert invalid.status_code == 401
