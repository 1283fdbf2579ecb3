"""HubSpot's secondary-email rule: a contact's additional email finds it without becoming its primary,
unless the row also carries the Record ID, which promotes it."""

from __future__ import annotations

import httpx

from .conftest import contacts_request, start_import, wait_final


async def _contact(records: httpx.AsyncClient, **properties: str) -> dict:
    created = await records.post("/crm/v3/objects/contacts", json={"properties": properties})
    assert created.status_code == 201, created.text
    return created.json()


async def _read(records: httpx.AsyncClient, record_id: str) -> dict:
    response = await records.get(f"/crm/v3/objects/contacts/{record_id}",
                                 params={"properties": "email,hs_additional_emails,firstname,jobtitle"})
    assert response.status_code == 200, response.text
    return response.json()["properties"]


async def test_secondary_email_finds_the_contact_and_keeps_the_primary(imports: httpx.AsyncClient,
                                                                       records: httpx.AsyncClient) -> None:
    ann = await _contact(records, email="ann@primary-mail.com", hs_additional_emails="ann@second-mail.com",
                         firstname="Ann")
    content = b"Email,First Name,Job\nANN@second-mail.com,Annie,Pilot\nnew@second-mail.com,New,Cook\n"
    request = contacts_request([("Email", "email"), ("First Name", "firstname"), ("Job", "jobtitle")])
    done = await wait_final(imports, (await start_import(imports, request, {"c.csv": content})).json()["id"])
    assert done["state"] == "DONE", done
    counters = done["metadata"]["counters"]
    assert (counters.get("CREATED_OBJECTS"), counters.get("UPDATED_OBJECTS")) == (1, 1)
    stored = await _read(records, ann["id"])
    assert stored["email"] == "ann@primary-mail.com"
    assert stored["hs_additional_emails"] == "ann@second-mail.com"
    assert (stored["firstname"], stored["jobtitle"]) == ("Annie", "Pilot")


async def test_record_id_with_a_secondary_email_promotes_it(imports: httpx.AsyncClient,
                                                            records: httpx.AsyncClient) -> None:
    bob = await _contact(records, email="bob@old-primary.com", hs_additional_emails="bob@alt-one.com;bob@alt-two.com")
    content = f"Record ID,Email\n{bob['id']},bob@alt-two.com\n".encode()
    request = contacts_request([("Record ID", "hs_object_id"), ("Email", "email")])
    done = await wait_final(imports, (await start_import(imports, request, {"c.csv": content})).json()["id"])
    assert done["state"] == "DONE", done
    stored = await _read(records, bob["id"])
    assert stored["email"] == "bob@alt-two.com"
    assert sorted(stored["hs_additional_emails"].split(";")) == ["bob@alt-one.com", "bob@old-primary.com"]
    # Every address still finds the one contact.
    for email in ("bob@old-primary.com", "bob@alt-one.com", "bob@alt-two.com"):
        found = await records.post("/internal/v1/records/contacts/resolve", json={"property": "email", "values": [email]})
        assert found.json()["matches"] == {email: [bob["id"]]}
