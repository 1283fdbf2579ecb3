"""Messy real-world files: every bad row reported with its line, column, type and value; every good row imported."""

from __future__ import annotations

import csv
import io

import httpx

from .conftest import all_errors, contacts_request, search_all, start_import, wait_final

EXCEL_CSV = (
    "E-Mail;Vorname;Nachname;Geburtstag;Notiz;Intern\r\n"
    'anna@example.com;Anna;Müller;24.12.1990;"Zeile 1\r\nZeile 2";x\r\n'
    "bad-email;Bob;Builder;01.02.1985;;x\r\n"
    "carl@example.com;Carl;Ragged\r\n"
    "dora@example.com;Dora;Dates;31.02.2000;;x\r\n"
    "ANNA@example.com;Anna-Maria;;;;x\r\n"
    "=HYPERLINK(\"http://evil\");Mallory;Formula;;;x\r\n"
    'eve@example.com;Eve;Évêque;1.3.1970;"quoted ""semi;colon""";x\r\n'
    "\r\n"
)


async def test_excel_csv_with_bom_semicolons_quoted_newlines_ragged_rows_and_bad_values(
        imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    request = contacts_request([("E-Mail", "email"), ("Vorname", "firstname"), ("Nachname", "lastname"),
                                ("Geburtstag", "date_of_birth"), ("Notiz", "message"), ("Intern", None)],
                               dateFormat="DAY_MONTH_YEAR", importOperations={"0-1": "UPSERT"})
    request["files"][0]["fileImportPage"]["columnMappings"][4]["propertyName"] = "address"
    response = await start_import(imports, request, {"contacts.csv": EXCEL_CSV.encode("utf-8-sig")})
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["state"] in ("STARTED", "PROCESSING", "DEFERRED")
    assert started["metadata"]["counters"]["TOTAL_ROWS"] == 7
    assert started["mappedObjectTypeIds"] == ["0-1"]

    done = await wait_final(imports, started["id"])
    assert done["state"] == "DONE", done
    counters = done["metadata"]["counters"]
    assert counters["CREATED_OBJECTS"] == 3
    assert counters["ROWS_PROCESSED"] == 7

    contacts = {c["properties"]["email"]: c["properties"] for c in
                await search_all(records, "contacts", ["email", "firstname", "lastname", "date_of_birth", "address"])}
    assert set(contacts) == {"anna@example.com", "dora@example.com", "eve@example.com"}
    # The later row of a duplicate email wins; its blank cells do not clear earlier values.
    assert contacts["anna@example.com"]["firstname"] == "Anna-Maria"
    assert contacts["anna@example.com"]["lastname"] == "Müller"
    assert contacts["anna@example.com"]["date_of_birth"] == "1990-12-24"
    assert contacts["anna@example.com"]["address"] == "Zeile 1\r\nZeile 2"
    assert contacts["eve@example.com"]["lastname"] == "Évêque"
    assert contacts["eve@example.com"]["date_of_birth"] == "1970-03-01"
    assert contacts["eve@example.com"]["address"] == 'quoted "semi;colon"'
    # An unparseable date drops that value only: the contact is still imported.
    assert contacts["dora@example.com"]["firstname"] == "Dora"
    assert not contacts["dora@example.com"].get("date_of_birth")

    errors = await all_errors(imports, started["id"])
    found = {(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors}
    assert found == {(3, "INVALID_EMAIL"), (4, "INCORRECT_NUMBER_OF_COLUMNS"), (5, "COULD_NOT_PARSE_DATE"),
                     (7, "INVALID_EMAIL")}
    by_line = {e["sourceData"]["lineNumber"]: e for e in errors}
    assert by_line[3]["invalidValue"] == "bad-email"
    assert by_line[3]["knownColumnNumber"] == 1
    assert by_line[3]["objectTypeId"] == "0-1"
    assert by_line[5]["invalidValue"] == "31.02.2000"
    assert by_line[5]["knownColumnNumber"] == 4
    assert by_line[4]["sourceData"]["rowData"] == ["carl@example.com", "Carl", "Ragged"]
    assert isinstance(by_line[4]["createdAt"], int)
    assert by_line[4]["sourceData"]["fileId"] == int(done["metadata"]["fileIds"][0])
    assert all(e["errorMessage"] for e in errors)

    download = await imports.get(f"/corral/v1/imports/{started['id']}/errors.csv")
    assert download.status_code == 200
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Line number"
    formula_row = next(r for r in rows[1:] if r[0] == "7")
    assert formula_row[6] == "'=HYPERLINK(\"http://evil\")"
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)


async def test_windows_1252_file_keeps_accents(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    content = ("Email,First Name,Last Name,City\n"
               "jose@example.es,José,Muñoz,Málaga\n"
               "francois@example.fr,François,Lefèvre,Besançon\n"
               "zoe@example.de,Zoë,Straße,Köln\n").encode("cp1252")
    request = contacts_request([("Email", "email"), ("First Name", "firstname"), ("Last Name", "lastname"),
                                ("City", "city")])
    response = await start_import(imports, request, {"contacts.csv": content})
    assert response.status_code == 200, response.text
    done = await wait_final(imports, response.json()["id"])
    assert done["state"] == "DONE"
    assert await all_errors(imports, done["id"]) == []
    contacts = {c["properties"]["email"]: c["properties"] for c in
                await search_all(records, "contacts", ["email", "firstname", "lastname", "city"])}
    assert contacts["jose@example.es"] == {**contacts["jose@example.es"], "firstname": "José", "lastname": "Muñoz",
                                           "city": "Málaga"}
    assert contacts["francois@example.fr"]["lastname"] == "Lefèvre"
    assert contacts["zoe@example.de"]["lastname"] == "Straße"


async def test_xlsx_first_sheet_with_typed_cells(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    from datetime import date

    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Email", "First name", "Birthday", "Visits"])
    sheet.append(["xl1@example.com", "Xavier", date(1980, 5, 17), 12])
    sheet.append(["xl2@example.com", "Yolanda", "17/05/1981", 3.5])
    sheet.append(["not-an-email", "Zed", None, 1])
    workbook.create_sheet("ignored").append(["other@example.com"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    request = contacts_request([("Email", "email"), ("First name", "firstname"), ("Birthday", "date_of_birth"),
                                ("Visits", "hs_analytics_num_visits")], file_name="people.xlsx",
                               dateFormat="DAY_MONTH_YEAR")
    request["files"][0]["fileFormat"] = "SPREADSHEET"
    response = await start_import(imports, request, {"people.xlsx": buffer.getvalue()})
    assert response.status_code == 200, response.text
    done = await wait_final(imports, response.json()["id"])
    assert done["state"] == "DONE"
    contacts = {c["properties"]["email"]: c["properties"] for c in
                await search_all(records, "contacts", ["email", "date_of_birth", "hs_analytics_num_visits"])}
    assert set(contacts) == {"xl1@example.com", "xl2@example.com"}
    assert contacts["xl1@example.com"]["date_of_birth"] == "1980-05-17"
    assert contacts["xl2@example.com"]["date_of_birth"] == "1981-05-17"
    assert contacts["xl1@example.com"]["hs_analytics_num_visits"] == "12"
    errors = await all_errors(imports, done["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [(4, "INVALID_EMAIL")]
