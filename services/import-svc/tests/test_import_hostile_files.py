"""Uploads built to hurt: limits checked while reading (pixels before decoding, bytes before buffering, cells
and lines while parsing), refused with a 400 that says which limit; and the smaller findings of issue 16."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from import_svc.domain.values import formula_safe
from import_svc.files import MAX_CELL_CHARS, MAX_LINE_CHARS, MAX_ROWS, MIXED_UTF8_CP1252, detect_encoding

from .conftest import contacts_request, search_all, start_import, wait_final

CONTACT_COLUMNS = [("Email", "email"), ("First", "firstname")]


def assert_refused(response: httpx.Response, *phrases: str) -> dict:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    for phrase in phrases:
        assert phrase in body["message"], body["message"]
    return body


# --- images: the pixel count is read from the header, before any pixel is decoded --------------------------

def white_png(width: int, height: int) -> bytes:
    """A plain white picture: a few hundred KB on the wire whatever its size (a 13,000 x 13,000 one is 518 KB
    and took import-svc to 1.9 GB when it was decoded before being measured)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_qr_image_with_too_many_pixels_is_refused_before_decoding(imports: httpx.AsyncClient) -> None:
    image = white_png(7_000, 7_000)  # 49 megapixels, 40 allowed
    assert len(image) < 1024 * 1024
    answer = await imports.post("/corral/v1/capture/qr/image", files={"image": ("qr.png", image, "image/png")})
    assert_refused(answer, "7000 x 7000 pixels", "40 megapixels")


async def streamed(total: int, chunk: int, consumed: list[int]):  # type: ignore[no-untyped-def]
    sent = 0
    while sent < total:
        consumed.append(chunk)
        sent += chunk
        yield b"x" * chunk


@pytest.mark.parametrize(("path", "limit", "message"), [
    ("/corral/v1/capture/vcards", 20, "The vCard file is larger than 20 MB"),
    ("/corral/v1/capture/business-card", 10, "The image is larger than 10 MB"),
])
async def test_raw_bodies_are_refused_before_they_are_read_whole(imports: httpx.AsyncClient, path: str, limit: int,
                                                                 message: str) -> None:
    consumed: list[int] = []
    # Chunked, no content-length: counted as it arrives, and not read past the limit.
    answer = await imports.post(path, content=streamed(300 * 1024 * 1024, 1024 * 1024, consumed),
                                headers={"content-type": "application/octet-stream"})
    assert_refused(answer, message)
    assert sum(consumed) <= (limit + 2) * 1024 * 1024, "the body was read past the limit"
    declared = await imports.post(path, content=b"", headers={"content-type": "application/octet-stream",
                                                              "content-length": str(300 * 1024 * 1024)})
    assert_refused(declared, message)


async def test_a_multipart_upload_is_counted_while_it_streams(imports: httpx.AsyncClient) -> None:
    consumed: list[int] = []

    async def multipart():  # type: ignore[no-untyped-def]
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.vcf"\r\n\r\n'
        async for part in streamed(300 * 1024 * 1024, 1024 * 1024, consumed):
            yield part
        yield b"\r\n--b--\r\n"

    answer = await imports.post("/corral/v1/capture/vcards", content=multipart(),
                                headers={"content-type": "multipart/form-data; boundary=b"})
    assert_refused(answer, "larger than 20 MB")
    assert sum(consumed) <= 22 * 1024 * 1024


async def test_too_many_vcards_are_counted_not_parsed(imports: httpx.AsyncClient) -> None:
    cards = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n" * 10_001
    assert_refused(await imports.post("/corral/v1/capture/vcards", content=cards.encode(),
                                      headers={"content-type": "text/vcard"}), "At most 10000 cards", "10,001")


async def test_a_nul_in_a_vcard_is_removed_with_a_warning(imports: httpx.AsyncClient) -> None:
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Do\x00e;Jo\x00hn;;;\r\nEMAIL:nul-card@example.com\r\nEND:VCARD\r\n"
    answer = await imports.post("/corral/v1/capture/vcards", content=card.encode(),
                                headers={"content-type": "text/vcard"})
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["results"]
    assert result["status"] == "CREATED"
    assert (result["properties"]["firstname"], result["properties"]["lastname"]) == ("John", "Doe")
    assert any("NUL" in warning for warning in result["warnings"])


# --- business-card confirmations ------------------------------------------------------------------------------

async def test_a_confirmation_with_a_value_records_would_drop_is_refused(imports: httpx.AsyncClient,
                                                                         records: httpx.AsyncClient) -> None:
    answer = await imports.post("/corral/v1/capture/business-card/confirm", json={
        "properties": {"email": "pwned@example.com", "firstname": "P", "lifecyclestage": "pwned"}})
    body = assert_refused(answer, "lifecyclestage")
    assert body["errors"][0]["context"] == {"propertyName": ["lifecyclestage"]}
    assert await search_all(records, "contacts", ["email"]) == [], "nothing was saved"
    ok = await imports.post("/corral/v1/capture/business-card/confirm", json={
        "properties": {"email": "fine@example.com", "firstname": "F", "lifecyclestage": "customer"}})
    assert ok.status_code == 200, ok.text


async def test_a_confirmation_with_unstorable_text_is_refused_naming_it(imports: httpx.AsyncClient) -> None:
    for bad in ("\\u0000", "\\ud800"):
        answer = await imports.post("/corral/v1/capture/business-card/confirm",
                                    content=f'{{"properties": {{"firstname": "a{bad}b"}}}}'.encode(),
                                    headers={"content-type": "application/json"})
        body = assert_refused(answer, "properties.firstname")
        assert body["errors"][0]["context"] == {"propertyName": ["firstname"]}


# --- CSV: cells and lines are bounded while parsing ---------------------------------------------------------

async def test_a_quote_that_never_closes_is_a_400_at_start_and_in_the_preview(imports: httpx.AsyncClient) -> None:
    content = b'Email,First\r\na@example.com,"' + b"x" * (MAX_CELL_CHARS + 10) + b"\r\nb@example.com,B\r\n"
    answer = await start_import(imports, contacts_request(CONTACT_COLUMNS, file_name="q.csv"), {"q.csv": content})
    assert_refused(answer, "Line 2", "a quote left open")
    preview = await imports.post("/corral/v1/imports/preview", files={"file": ("q.csv", content, "text/csv")})
    assert_refused(preview, "Line 2")


async def test_a_file_without_line_breaks_is_not_read_into_one_string(imports: httpx.AsyncClient) -> None:
    content = b"Email,First\n" + b"a," * (MAX_LINE_CHARS // 2 + 10)
    answer = await start_import(imports, contacts_request(CONTACT_COLUMNS, file_name="l.csv"), {"l.csv": content})
    assert_refused(answer, "Line 2 is longer than")


# --- XLSX -------------------------------------------------------------------------------------------------------

def xlsx_file(path: Path, sheet_rows: bytes, shared: list[str] | None = None) -> bytes:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats'
                         '.org/package/2006/content-types"/>')
        archive.writestr("xl/workbook.xml", f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
                         '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>')
        archive.writestr("xl/_rels/workbook.xml.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/'
                         'package/2006/relationships"><Relationship Id="rId1" Target="worksheets/sheet1.xml" '
                         'Type="x"/></Relationships>')
        if shared is not None:
            archive.writestr("xl/sharedStrings.xml", f'<sst xmlns="{main}">' + "".join(
                f"<si><t>{s}</t></si>" for s in shared) + "</sst>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(f'<worksheet xmlns="{main}"><sheetData>'.encode())
            sheet.write(sheet_rows)
            sheet.write(b"</sheetData></worksheet>")
    return path.read_bytes()


def inline_row(number: int, *values: str) -> bytes:
    cells = "".join(f'<c r="{chr(65 + i)}{number}" t="inlineStr"><is><t>{v}</t></is></c>'
                    for i, v in enumerate(values))
    return f'<row r="{number}">{cells}</row>'.encode()


def spreadsheet_request(file_name: str) -> dict:
    request = contacts_request(CONTACT_COLUMNS, file_name=file_name)
    request["files"][0]["fileFormat"] = "SPREADSHEET"
    return request


async def test_an_xlsx_with_a_huge_inline_cell_is_refused_at_start(imports: httpx.AsyncClient,
                                                                   tmp_path: Path) -> None:
    rows = inline_row(1, "Email", "First") + inline_row(2, "a@example.com", "x" * (MAX_CELL_CHARS + 1))
    content = xlsx_file(tmp_path / "cell.xlsx", rows)
    answer = await start_import(imports, spreadsheet_request("cell.xlsx"), {"cell.xlsx": content})
    assert_refused(answer, f"longer than {MAX_CELL_CHARS:,} characters")
    preview = await imports.post("/corral/v1/imports/preview", files={"file": ("cell.xlsx", content, "x")})
    assert_refused(preview, "longer than")


async def test_an_xlsx_with_a_huge_shared_string_is_refused_at_start(imports: httpx.AsyncClient,
                                                                     tmp_path: Path) -> None:
    rows = inline_row(1, "Email", "First") + b'<row r="2"><c r="A2" t="s"><v>0</v></c></row>'
    content = xlsx_file(tmp_path / "shared.xlsx", rows, shared=["y" * (MAX_CELL_CHARS + 1)])
    answer = await start_import(imports, spreadsheet_request("shared.xlsx"), {"shared.xlsx": content})
    assert_refused(answer, "shared string 1", "longer than")


async def test_an_xlsx_cell_beyond_the_last_column_is_refused(imports: httpx.AsyncClient, tmp_path: Path) -> None:
    rows = b'<row r="1"><c r="A1" t="inlineStr"><is><t>Email</t></is></c>' \
           b'<c r="ZZZZZZZZ1" t="inlineStr"><is><t>far</t></is></c></row>'
    content = xlsx_file(tmp_path / "wide.xlsx", rows)
    answer = await start_import(imports, spreadsheet_request("wide.xlsx"), {"wide.xlsx": content})
    assert_refused(answer, "beyond the last column")


async def test_an_xlsx_over_the_row_limit_is_refused_at_start_like_a_csv(imports: httpx.AsyncClient,
                                                                         tmp_path: Path) -> None:
    """A 1,100,000-row XLSX ran to DONE with 1.1 M error rows; a CSV of that size was refused at start."""
    body = inline_row(1, "Email", "First") + b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (n, n, n) for n in range(2, MAX_ROWS + 3))
    content = xlsx_file(tmp_path / "rows.xlsx", body)
    answer = await start_import(imports, spreadsheet_request("rows.xlsx"), {"rows.xlsx": content})
    assert_refused(answer, f"more than {MAX_ROWS:,} rows")
    listed = (await imports.get("/crm/v3/imports")).json()["results"]
    assert listed == [], "nothing was started"


# --- a file of UTF-8 and Windows-1252 lines -------------------------------------------------------------------

async def test_a_file_mixing_utf8_and_cp1252_lines_is_decoded_line_by_line(imports: httpx.AsyncClient,
                                                                           records: httpx.AsyncClient,
                                                                           tmp_path: Path) -> None:
    content = (b"Email,First\n" + "zoe@mixed.example,Zoë\n".encode()
               + "jose@mixed.example,José\n".encode("cp1252") + "ana@mixed.example,Ana Müller\n".encode())
    path = tmp_path / "mixed.csv"
    path.write_bytes(content)
    assert detect_encoding(path) == MIXED_UTF8_CP1252
    preview = await imports.post("/corral/v1/imports/preview", files={"file": ("mixed.csv", content, "text/csv")})
    assert preview.status_code == 200, preview.text
    assert preview.json()["encoding"] == MIXED_UTF8_CP1252
    assert "line(s) 3 are not UTF-8" in preview.json()["warnings"][0]
    assert [row["values"][1] for row in preview.json()["rows"]] == ["Zoë", "José", "Ana Müller"]
    started = await start_import(imports, contacts_request(CONTACT_COLUMNS, file_name="mixed.csv"),
                                 {"mixed.csv": content})
    assert started.status_code == 200, started.text
    assert (await wait_final(imports, started.json()["id"]))["state"] == "DONE"
    names = {c["properties"]["email"]: c["properties"]["firstname"]
             for c in await search_all(records, "contacts", ["email", "firstname"])}
    assert names == {"zoe@mixed.example": "Zoë", "jose@mixed.example": "José",
                     "ana@mixed.example": "Ana Müller"}


def test_a_whole_cp1252_file_is_still_read_as_one_encoding(tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("Email,First\njose@x.example,José\nzoe@x.example,Zoë\n".encode("cp1252"))
    assert detect_encoding(path) == "cp1252"


# --- the error file -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_lead_of_owasps_list_is_escaped(lead: str) -> None:
    assert formula_safe(f"{lead}cmd|' /C calc'!A0") == f"'{lead}cmd|' /C calc'!A0"
    assert formula_safe("plain") == "plain"
