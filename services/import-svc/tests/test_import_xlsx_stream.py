"""The streaming XLSX reader gives the rows python-calamine gives, in constant memory."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from import_svc import xlsx
from import_svc.files import _cell_text, inspect
from openpyxl import Workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904
from python_calamine import CalamineWorkbook

from .conftest import contacts_request, search_all, start_import, wait_final


def calamine_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The reference: calamine's first sheet, with the import's cell formatting."""
    out = []
    for line, values in enumerate(CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).iter_rows(), 1):
        cells = [_cell_text(v) for v in values]
        while cells and cells[-1] == "":
            cells.pop()
        if cells:
            out.append((line, cells))
    return out


@pytest.mark.parametrize("epoch_1904", [False, True], ids=["1900 dates", "1904 dates"])
def test_rows_match_calamine(tmp_path: Path, epoch_1904: bool) -> None:
    workbook = Workbook()
    if epoch_1904:
        workbook.epoch = CALENDAR_MAC_1904
    sheet = workbook.active
    sheet.append(["Email", "Name", "Born", "Met at", "Visits", "Score", "VIP", "Note"])
    sheet.append(["a@x.io", "Ann", date(1980, 5, 17), datetime(2024, 3, 1, 14, 30), 12, 3.25, True, "multi\nline"])
    sheet.append(["b@x.io", None, None, None, 0, -0.5, False, "Ünïcødé ✓"])
    sheet.append([])  # a blank row: skipped, the line numbers after it keep counting
    sheet.append(["c@x.io", "Ann", "17/05/1981", None, 1e15, 1.5e-7, None, '"quoted", comma'])
    sheet["K6"] = "far right"  # a sparse row: the missing cells in between are blank
    sheet["B7"] = "only the second column"
    workbook.create_sheet("second").append(["never read"])
    path = tmp_path / "people.xlsx"
    workbook.save(path)

    streamed = list(xlsx.iter_rows(path))
    assert streamed == calamine_rows(path)
    assert streamed[1] == (2, ["a@x.io", "Ann", "1980-05-17", "2024-03-01T14:30:00", "12", "3.25", "true",
                               "multi\nline"])
    assert [line for line, _ in streamed] == [1, 2, 3, 5, 6, 7]
    assert streamed[4] == (6, [""] * 10 + ["far right"])
    layout = inspect(path, "people.xlsx")
    assert layout.header == ["Email", "Name", "Born", "Met at", "Visits", "Score", "VIP", "Note"]
    assert layout.data_rows == 5


def test_write_only_workbooks_with_inline_strings(tmp_path: Path) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("contacts")
    for i in range(3_000):
        sheet.append([f"p{i}@x.io", f"Name {i % 7}", i, i / 4])
    path = tmp_path / "big.xlsx"
    workbook.save(path)
    assert list(xlsx.iter_rows(path)) == calamine_rows(path)
    assert xlsx.count_data_rows(path) == 2_999


def test_a_zip_that_is_no_workbook_is_refused(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    assert not xlsx.is_xlsx(path)
    with pytest.raises(xlsx.NotAnXlsxWorkbook):
        list(xlsx.iter_rows(path))


def broken_off_workbook(path: Path, rows: int, cut_before_row: int) -> None:
    """A workbook whose sheet XML stops in the middle of row `cut_before_row` (a truncated upload)."""
    import zipfile

    whole = path.with_suffix(".whole.xlsx")
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("contacts")
    sheet.append(["Email", "First Name"])
    for i in range(rows):
        sheet.append([f"cut{i}@broken-xlsx.io", f"N{i}"])
    workbook.save(whole)
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[:data.index(f'<row r="{cut_before_row}"'.encode()) + 20]
            target.writestr(item, data)


def test_a_sheet_that_breaks_off_names_the_last_row_read(tmp_path: Path) -> None:
    path = tmp_path / "cut.xlsx"
    broken_off_workbook(path, rows=50, cut_before_row=31)
    read = []
    with pytest.raises(xlsx.UnreadableSheet, match="after its row 30"):
        for line, _ in xlsx.iter_rows(path):
            read.append(line)
    assert read == list(range(1, 31))


async def test_an_import_of_a_sheet_that_breaks_off_fails_with_the_place_and_keeps_earlier_batches(
        imports: httpx.AsyncClient, records: httpx.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "cut.xlsx"
    broken_off_workbook(path, rows=2_500, cut_before_row=1_802)  # the tests' batches hold 1,000 rows
    request = contacts_request([("Email", "email"), ("First Name", "firstname")], file_name="cut.xlsx")
    request["files"][0]["fileFormat"] = "SPREADSHEET"
    response = await start_import(imports, request, {"cut.xlsx": path.read_bytes()})
    assert response.status_code == 200, response.text
    done = await wait_final(imports, response.json()["id"])
    assert done["state"] == "FAILED"
    assert "could not be read after its row 1801" in done["failureReason"]
    assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 1_000  # the first batch, written before the break
    stored = await search_all(records, "contacts", ["email"])
    assert len(stored) == 1_000
