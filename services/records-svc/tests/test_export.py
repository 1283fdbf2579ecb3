"""The internal export: live records of a type, only the asked properties, keyset-paged by id."""

from __future__ import annotations

import httpx


async def _create(api: httpx.AsyncClient, object_type: str, **props: str) -> str:
    response = await api.post(f"/crm/v3/objects/{object_type}", json={"properties": props})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_export_pages_by_id_with_only_the_asked_properties(api: httpx.AsyncClient) -> None:
    ids = [await _create(api, "contacts", firstname=f"Ada{i}", lastname="Lovelace", city="London")
           for i in range(5)]
    archived = await _create(api, "contacts", firstname="Gone")
    assert (await api.delete(f"/crm/v3/objects/contacts/{archived}")).status_code == 204
    await _create(api, "companies", name="Not a contact")

    seen: list[list[str | None]] = []
    after = "0"
    first = True
    while True:
        response = await api.get("/internal/v1/records/contacts/export",
                                 params={"properties": "firstname,city", "after": after, "limit": 2,
                                         "withTotal": str(first).lower()})
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["objectTypeId"], page["objectType"], page["properties"]) == ("0-1", "contacts",
                                                                                  ["firstname", "city"])
        if first:
            assert page["total"] == 5
            first = False
        seen += page["results"]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert [row[0] for row in seen] == ids
    assert seen[0] == [ids[0], "Ada0", "London"]

    only = await api.get("/internal/v1/records/0-1/export",
                         params={"properties": "lastname", "ids": f"{ids[3]},{archived}"})
    assert only.json()["results"] == [[ids[3], "Lovelace"]]


async def test_export_refuses_unknown_properties_naming_them(api: httpx.AsyncClient) -> None:
    response = await api.get("/internal/v1/records/contacts/export", params={"properties": "firstname,shoe_size"})
    assert response.status_code == 400
    body = response.json()
    assert "shoe_size" in body["message"]
    assert body["errors"][0]["context"] == {"propertyName": ["shoe_size"]}
