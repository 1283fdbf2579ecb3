"""Options: date and number formats, time zone, don't-overwrite, new properties, companies from email domains."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import httpx
import pytest
from import_svc.domain.values import (
    CouldNotParse,
    convert_date,
    convert_datetime,
    convert_number,
    formula_safe,
    number_format_for,
)

from .conftest import all_errors, contacts_request, search_all, start_import, wait_final


@pytest.mark.parametrize(("text", "fmt", "expected"), [
    ("12/24/1990", "MONTH_DAY_YEAR", "1990-12-24"),
    ("24/12/1990", "DAY_MONTH_YEAR", "1990-12-24"),
    ("24.12.90", "DAY_MONTH_YEAR", "1990-12-24"),
    ("1990/12/24", "YEAR_MONTH_DAY", "1990-12-24"),
    ("1990-12-24", "MONTH_DAY_YEAR", "1990-12-24"),
    ("3-1-2024 10:00", "MONTH_DAY_YEAR", "2024-03-01"),
])
def test_dates_become_iso(text: str, fmt: str, expected: str) -> None:
    assert convert_date(text, fmt) == expected


@pytest.mark.parametrize(("text", "fmt"), [("13/24/1990", "MONTH_DAY_YEAR"), ("31.02.2000", "DAY_MONTH_YEAR"),
                                           ("yesterday", "MONTH_DAY_YEAR")])
def test_bad_dates_are_reported(text: str, fmt: str) -> None:
    with pytest.raises(CouldNotParse) as caught:
        convert_date(text, fmt)
    assert caught.value.code == "COULD_NOT_PARSE_DATE"


def test_datetimes_use_the_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert convert_datetime("24.12.2024 18:30", "DAY_MONTH_YEAR", berlin) == "2024-12-24T17:30:00.000Z"
    assert convert_datetime("07/01/2024 6:05 PM", "MONTH_DAY_YEAR", berlin) == "2024-07-01T16:05:00.000Z"
    assert convert_datetime("2024-07-01T10:00:00Z", "MONTH_DAY_YEAR", berlin) == "2024-07-01T10:00:00.000Z"
    assert convert_datetime("2024-07-01", "MONTH_DAY_YEAR", None) == "2024-07-01T00:00:00.000Z"


@pytest.mark.parametrize(("text", "country", "expected"), [
    ("1,234.5", "US", "1234.5"), ("1.234,5", "DE", "1234.5"), ("1 234,5", "FR", "1234.5"),
    ("1'234.50", "CH", "1234.50"), ("-12", "DE", "-12"), ("€ 3,50", "de-DE", "3.50"),
])
def test_numbers_by_country(text: str, country: str, expected: str) -> None:
    assert convert_number(text, number_format_for(country)) == expected


def test_number_in_the_wrong_format_is_reported() -> None:
    with pytest.raises(CouldNotParse):
        convert_number("12abc", number_format_for("US"))


def test_formula_escaping() -> None:
    assert [formula_safe(v) for v in ("=1+1", "+49 30", "-2", "@SUM(A1)", "plain")] == [
        "'=1+1", "'+49 30", "'-2", "'@SUM(A1)", "plain"]


async def test_do_not_overwrite_per_column_and_for_all(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    for email in ("keep1@options-imports.com", "keep2@options-imports.com"):
        created = await records.post("/crm/v3/objects/contacts", json={"properties": {
            "email": email, "firstname": "Old", "city": "Oldtown"}})
        assert created.status_code == 201
    content = (b"Email,First Name,City,Job\nkeep1@options-imports.com,New,Newtown,Baker\n"
               b"fresh@options-imports.com,Fresh,Freshtown,Cook\n")
    request = contacts_request([("Email", "email"), ("First Name", "firstname"), ("City", "city"),
                                ("Job", "jobtitle")])
    request["files"][0]["fileImportPage"]["columnMappings"][2]["doNotOverwrite"] = True
    done = await wait_final(imports, (await start_import(imports, request, {"c.csv": content})).json()["id"])
    assert done["state"] == "DONE"
    people = {c["properties"]["email"]: c["properties"] for c in
              await search_all(records, "contacts", ["email", "firstname", "city", "jobtitle"])}
    assert (people["keep1@options-imports.com"]["firstname"], people["keep1@options-imports.com"]["city"],
            people["keep1@options-imports.com"]["jobtitle"]) == ("New", "Oldtown", "Baker")
    assert people["fresh@options-imports.com"]["city"] == "Freshtown"

    all_kept = contacts_request([("Email", "email"), ("First Name", "firstname"), ("City", "city"),
                                 ("Job", "jobtitle")], doNotOverwrite=True)
    content = b"Email,First Name,City,Job\nkeep2@options-imports.com,New,Newtown,Baker\n"
    done = await wait_final(imports, (await start_import(imports, all_kept, {"c.csv": content})).json()["id"])
    person = next(c["properties"] for c in await search_all(records, "contacts", ["email", "firstname", "city",
                                                                                    "jobtitle"])
                  if c["properties"]["email"] == "keep2@options-imports.com")
    # Existing values stay; the empty one is filled.
    assert (person["firstname"], person["city"], person["jobtitle"]) == ("Old", "Oldtown", "Baker")


async def test_new_property_number_format_and_companies_from_domains(imports: httpx.AsyncClient,
                                                                     records: httpx.AsyncClient) -> None:
    content = ("Email;Umsatz;Lieblingsfarbe\n"
               "a@firm-imports.com;1.234,50;Blau\n"
               "b@firm-imports.com;99,9;Rot\n"
               "c@gmail.com;7;Grün\n"
               "d@firm-imports.com;12x;Gelb\n").encode()
    request = contacts_request([("Email", "email"), ("Umsatz", "revenue_eur"), ("Lieblingsfarbe", "favorite_color")],
                               numberFormat="DE", createCompaniesFromEmailDomains=True)
    mappings = request["files"][0]["fileImportPage"]["columnMappings"]
    mappings[1]["createNewProperty"] = {"label": "Umsatz", "type": "number", "fieldType": "number"}
    mappings[2]["createNewProperty"] = {"label": "Favorite color"}
    done = await wait_final(imports, (await start_import(imports, request, {"c.csv": content})).json()["id"])
    assert done["state"] == "DONE", done
    props = (await records.get("/crm/v3/properties/contacts/favorite_color")).json()
    assert props["label"] == "Favorite color" and props["type"] == "string"
    people = {c["properties"]["email"]: c for c in
              await search_all(records, "contacts", ["email", "revenue_eur", "favorite_color"])}
    assert people["a@firm-imports.com"]["properties"]["revenue_eur"] == "1234.50"
    assert people["b@firm-imports.com"]["properties"]["revenue_eur"] == "99.9"
    assert people["c@gmail.com"]["properties"]["favorite_color"] == "Grün"
    assert not people["d@firm-imports.com"]["properties"].get("revenue_eur")
    errors = await all_errors(imports, done["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"], e["invalidValue"]) for e in errors] == [
        (5, "COULD_NOT_PARSE_NUMBER", "12x")]
    companies = await search_all(records, "companies", ["domain"])
    assert [c["properties"]["domain"] for c in companies] == ["firm-imports.com"]
    linked = (await records.get(f"/crm/v4/objects/companies/{companies[0]['id']}/associations/contacts")).json()
    assert {str(r["toObjectId"]) for r in linked["results"]} == {
        people[e]["id"] for e in ("a@firm-imports.com", "b@firm-imports.com", "d@firm-imports.com")}
