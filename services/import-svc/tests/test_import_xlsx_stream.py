"""The streaming XLSX reader gives the rows python-calamine gives, in constant memory."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from import_svc import xlsx
from import_svc.files import _cell_text, inspect
from openpyxl import Workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904
from python_calamine import CalamineWorkbook


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
