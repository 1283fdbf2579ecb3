"""Mapping help: suggestions by name, label and the header language; first rows validated; dry run."""

from __future__ import annotations

import httpx

from .conftest import search_all
from .test_import_files import EXCEL_CSV


async def test_preview_suggests_mappings_and_validates_first_rows(imports: httpx.AsyncClient,
                                                                  records: httpx.AsyncClient) -> None:
    response = await imports.post("/corral/v1/imports/preview", data={"headerLanguage": "de", "objectType": "contacts"},
                                  files={"file": ("kontakte.csv", EXCEL_CSV.encode("utf-8-sig"), "text/csv")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["encoding"] == "utf-8-sig"
    assert body["delimiter"] == ";"
    assert body["totalRows"] == 7
    assert body["dateFormat"] == "DAY_MONTH_YEAR"
    suggested = {c["columnName"]: (c["suggestion"] or {}).get("propertyName") for c in body["columns"]}
    assert suggested == {"E-Mail": "email", "Vorname": "firstname", "Nachname": "lastname",
                         "Geburtstag": "date_of_birth", "Notiz": None, "Intern": None}
    assert body["columnMappings"][4] == {"columnName": "Notiz", "ignored": True}
    assert [r["lineNumber"] for r in body["rows"]] == [2, 3, 4]
    assert body["rows"][0]["errors"] == []
    assert [(e["errorType"], e.get("knownColumnNumber")) for e in body["rows"][1]["errors"]] == [("INVALID_EMAIL", 1)]
    assert [e["errorType"] for e in body["rows"][2]["errors"]] == ["INCORRECT_NUMBER_OF_COLUMNS"]
    assert "dryRun" not in body


async def test_dry_run_checks_every_row_and_writes_nothing(imports: httpx.AsyncClient,
                                                           records: httpx.AsyncClient) -> None:
    response = await imports.post("/corral/v1/imports/preview", params={"dryRun": "true"},
                                  data={"headerLanguage": "de", "dateFormat": "DAY_MONTH_YEAR"},
                                  files={"file": ("kontakte.csv", EXCEL_CSV.encode("utf-8-sig"), "text/csv")})
    assert response.status_code == 200, response.text
    dry = response.json()["dryRun"]
    assert dry["rowsChecked"] == 7
    assert dry["rowsWithErrors"] == 4
    assert dry["errorCounts"] == {"INVALID_EMAIL": 2, "INCORRECT_NUMBER_OF_COLUMNS": 1, "COULD_NOT_PARSE_DATE": 1}
    assert {(e["lineNumber"], e["errorType"]) for e in dry["errors"]} == {
        (3, "INVALID_EMAIL"), (4, "INCORRECT_NUMBER_OF_COLUMNS"), (5, "COULD_NOT_PARSE_DATE"), (7, "INVALID_EMAIL")}
    assert await search_all(records, "contacts", ["email"]) == []


async def test_preview_matches_labels_of_custom_properties(imports: httpx.AsyncClient,
                                                           records: httpx.AsyncClient) -> None:
    created = await records.post("/crm/v3/properties/contacts", json={
        "name": "shoe_size", "label": "Shoe size", "type": "enumeration", "fieldType": "select",
        "groupName": "contactinformation", "options": [{"label": "Small", "value": "s"}, {"label": "Large", "value": "l"}]})
    assert created.status_code == 201, created.text
    content = b"Email Address,Shoe Size\nz1@preview-imports.com,Large\nz2@preview-imports.com,Huge\n"
    body = (await imports.post("/corral/v1/imports/preview",
                               files={"file": ("p.csv", content, "text/csv")})).json()
    assert [(c["suggestion"] or {}).get("propertyName") for c in body["columns"]] == ["email", "shoe_size"]
    assert body["rows"][0]["errors"] == []
    assert [e["errorType"] for e in body["rows"][1]["errors"]] == ["INVALID_ENUMERATION_OPTION"]
