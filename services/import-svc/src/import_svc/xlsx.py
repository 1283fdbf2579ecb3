"""XLSX read as a stream: the first sheet's rows, one at a time, in constant memory.

python-calamine (which reads XLS, XLSB and ODS here) loads a whole sheet before giving the first
row: about 650 MB for a 1,000,000-row, 10-column sheet, and import-svc peaked at 1.17 GB on such a
file (bench/README "Imports"). An XLSX file is a zip of XML parts, so its sheet can be parsed as it
is decompressed: memory is the shared-strings table plus one row, whatever the number of rows. It
costs CPU (about 30,000 rows/s on one core against calamine's 130,000), still three times what the
records writes sustain.

Values come out as calamine's did for the rest of the import: numbers as their shortest text
("12", "3.5"), booleans as "true"/"false", cells formatted as dates as ISO dates (with the time when
they have one), strings as written.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError, iterparse

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
OFFICE_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"

# Excel's built-in number formats that show a date or a time.
DATE_FORMAT_IDS = frozenset({14, 15, 16, 17, 18, 19, 20, 21, 22, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 45, 46, 47,
                             50, 51, 52, 53, 54, 55, 56, 57, 58})
_DATE_TOKENS = re.compile(r"[dmyhs]", re.IGNORECASE)
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.')  # quoted text, [colors], escapes, padding

_ROW, _CELL, _VALUE, _INLINE, _TEXT = MAIN + "row", MAIN + "c", MAIN + "v", MAIN + "is", MAIN + "t"


# What one workbook may ask of the reader. A cell of more than a million characters is no CRM data (no
# property holds more than 65,536); Excel's sheets end at row 1,048,576 and column XFD; the size limits
# of the XML parts bound the parsing time and the shared-strings table, which is held in memory.
MAX_CELL_CHARS = 1024 * 1024
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
MAX_SHEET_XML_BYTES = 2 * 1024**3
MAX_SHARED_STRINGS_XML_BYTES = 256 * 1024**2


class TooManyRows(Exception):
    """The sheet has more rows than a spreadsheet may."""

    def __init__(self, rows: int) -> None:
        super().__init__(f"{rows:,} rows")
        self.rows = rows


class NotAnXlsxWorkbook(Exception):
    """The zip holds no XLSX workbook (an ODS file, a renamed archive)."""


class UnreadableSheet(Exception):
    """The workbook's XML breaks off or is malformed; says after which sheet row."""


class _TextTooLong(Exception):
    pass


class _TextRunGuard:
    """A zip part read through `read()`, refused as soon as a run of bytes without a `<` (text between two
    tags, or one attribute) is longer than MAX_CELL_CHARS: ElementTree would gather the whole run into one
    string before anything could look at it (a 400 MB cell zips into 399 KB)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.run = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.check(chunk)
        return chunk

    def check(self, chunk: bytes) -> None:
        first = chunk.find(b"<")
        if first < 0:
            self.run += len(chunk)
        else:
            self.run += first
            if self.run > MAX_CELL_CHARS:
                raise _TextTooLong()
            self.run = len(chunk) - chunk.rfind(b"<") - 1
        if self.run > MAX_CELL_CHARS:
            raise _TextTooLong()


def _open_part(archive: zipfile.ZipFile, name: str, max_bytes: int, what: str) -> IO[bytes]:
    size = archive.getinfo(name).file_size
    if size > max_bytes:
        raise UnreadableSheet(f"The spreadsheet's {what} is {size / 1024**2:,.0f} MB of XML unzipped; at most "
                              f"{max_bytes / 1024**2:,.0f} MB are read (split the file)")
    return archive.open(name)


def is_xlsx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def count_data_rows(path: Path) -> int:
    """Rows that hold cells in the first sheet, less the first one, without parsing the sheet.

    Rows with cells end with `</row>`; empty rows are written `<row .../>`. A row whose cells are
    all blank is counted too, so this can be a little above what the import reads (it only feeds
    TOTAL_ROWS: an XLSX sheet cannot exceed the 1,048,576-row limit anyway).
    """
    with zipfile.ZipFile(path) as archive:
        rows = elements = 0
        tail = b""
        with _open_part(archive, _first_sheet(archive)[0], MAX_SHEET_XML_BYTES, "sheet") as sheet:
            guard = _TextRunGuard(sheet)
            try:
                while chunk := guard.read(1 << 20):
                    data = tail + chunk
                    # A tag cut by the chunk boundary is completed by the next chunk. The tail keeps one byte
                    # less than each tag, so a tag is never whole in both the tail and the next data.
                    rows += data.count(b"</row>")
                    elements += data[1:].count(b"<row ") + data[1:].count(b"<row>") if tail else \
                        data.count(b"<row ") + data.count(b"<row>")
                    tail = data[-5:]
            except _TextTooLong:
                raise UnreadableSheet(f"The spreadsheet holds a cell longer than {MAX_CELL_CHARS:,} characters "
                                      f"(after about {rows:,} rows)") from None
        # Empty rows (`<row r="9"/>`) hold no data but cost parsing: a sheet of more rows than Excel allows
        # is refused whatever they hold.
        if elements > EXCEL_MAX_ROWS:
            raise TooManyRows(elements)
        return max(rows - 1, 0)


def iter_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cells) for every row of the first sheet that has a non-blank cell."""
    with zipfile.ZipFile(path) as archive:
        sheet_part, date1904 = _first_sheet(archive)
        shared = _shared_strings(archive)
        date_styles = _date_styles(archive)
        epoch = datetime(1904, 1, 1) if date1904 else datetime(1899, 12, 30)
        last_line = 0
        with _open_part(archive, sheet_part, MAX_SHEET_XML_BYTES, "sheet") as sheet:
            try:
                for line, cells in _sheet_rows(_TextRunGuard(sheet), shared, date_styles, epoch):
                    last_line = line
                    yield line, cells
            except _TextTooLong:
                raise UnreadableSheet(f"The spreadsheet's row after row {last_line} holds a cell longer than "
                                      f"{MAX_CELL_CHARS:,} characters") from None
            except (ParseError, zipfile.BadZipFile, EOFError, ValueError, IndexError) as exc:
                raise UnreadableSheet(f"The spreadsheet could not be read after its row {last_line}: {exc}") from None


def _sheet_rows(sheet: IO[bytes] | _TextRunGuard, shared: list[str], date_styles: frozenset[str], epoch: datetime
                ) -> Iterator[tuple[int, list[str]]]:
    line = 0
    sheet_data: Element | None = None
    for event, element in iterparse(sheet, events=("start", "end")):
        if event == "start":
            if element.tag == MAIN + "sheetData":
                sheet_data = element
            continue
        if element.tag != _ROW:
            continue
        number = element.get("r")
        line = int(number) if number else line + 1
        cells = _row_cells(element, shared, date_styles, epoch)
        # Parsed rows are dropped at once: memory stays one row deep.
        element.clear()
        if sheet_data is not None:
            sheet_data.clear()
        while cells and cells[-1] == "":
            cells.pop()
        if cells:
            yield line, cells


def _row_cells(row: Element, shared: list[str], date_styles: frozenset[str], epoch: datetime) -> list[str]:
    cells: list[str] = []
    for cell in row:
        if cell.tag != _CELL:
            continue
        reference = cell.get("r")
        index = _column_index(reference) if reference else len(cells)
        if index >= EXCEL_MAX_COLUMNS:
            raise ValueError(f"cell {reference or index} lies beyond the last column of a sheet (XFD)")
        kind = cell.get("t")
        value_element = cell.find(_VALUE)
        raw = value_element.text if value_element is not None else None
        if kind == "s":
            value = shared[int(raw)] if raw is not None else ""
        elif kind == "inlineStr":
            inline = cell.find(_INLINE)
            value = "".join(t.text or "" for t in inline.iter(_TEXT)) if inline is not None else ""
        elif kind == "b":
            value = "true" if raw == "1" else "false"
        elif kind in ("str", "e", "d") or raw is None:
            value = raw or ""
        else:
            value = _number_text(float(raw), cell.get("s") in date_styles, epoch)
        if index >= len(cells):
            cells.extend([""] * (index - len(cells) + 1))
        cells[index] = value
    return cells


def _number_text(number: float, is_date: bool, epoch: datetime) -> str:
    if is_date:
        # A serial date's fraction of a day is binary floating point: round it to Excel's millisecond.
        moment = epoch + timedelta(milliseconds=round(number * 86_400_000))
        return moment.date().isoformat() if number.is_integer() else moment.isoformat()
    return str(int(number)) if number.is_integer() else repr(number)


def _column_index(reference: str) -> int:
    index = 0
    for char in reference:
        if "A" <= char <= "Z":
            index = index * 26 + ord(char) - 64
        elif "a" <= char <= "z":
            index = index * 26 + ord(char) - 96
        else:
            break
    return index - 1


def _first_sheet(archive: zipfile.ZipFile) -> tuple[str, bool]:
    """The first sheet's part name and whether the workbook counts dates from 1904."""
    if "xl/workbook.xml" not in archive.namelist():
        raise NotAnXlsxWorkbook("The file holds no XLSX workbook")
    first_id = None
    date1904 = False
    with archive.open("xl/workbook.xml") as workbook:
        for _, element in iterparse(workbook):
            if element.tag == MAIN + "sheet" and first_id is None:
                first_id = element.get(OFFICE_REL + "id")
            elif element.tag == MAIN + "workbookPr":
                date1904 = (element.get("date1904") or "").lower() in ("1", "true")
    target = None
    with archive.open("xl/_rels/workbook.xml.rels") as relations:
        for _, element in iterparse(relations):
            if element.tag == PACKAGE_REL + "Relationship" and element.get("Id") == first_id:
                target = element.get("Target")
    if first_id is None or target is None:
        raise NotAnXlsxWorkbook("The workbook has no sheet")
    part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
    return part, date1904


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    strings: list[str] = []
    with _open_part(archive, "xl/sharedStrings.xml", MAX_SHARED_STRINGS_XML_BYTES, "shared strings") as part:
        try:
            for _, element in iterparse(_TextRunGuard(part)):
                if element.tag == MAIN + "si":
                    # Plain text is one <t>; rich text is runs (<r><t>); phonetic hints (<rPh>) are not text.
                    hints = {t for hint in element.iter(MAIN + "rPh") for t in hint.iter(_TEXT)}
                    strings.append("".join(t.text or "" for t in element.iter(_TEXT) if t not in hints))
                    element.clear()
        except _TextTooLong:
            raise UnreadableSheet(f"A text of the spreadsheet (shared string {len(strings) + 1:,}) is longer than "
                                  f"{MAX_CELL_CHARS:,} characters") from None
        except ParseError as exc:
            raise UnreadableSheet(f"The spreadsheet's shared strings could not be read: {exc}") from None
    return strings


def _date_styles(archive: zipfile.ZipFile) -> frozenset[str]:
    """Indexes of the cell styles whose number format shows a date or time."""
    if "xl/styles.xml" not in archive.namelist():
        return frozenset()
    custom: dict[int, str] = {}
    style_formats: list[int] = []
    in_cell_styles = False
    with archive.open("xl/styles.xml") as part:
        for event, element in iterparse(part, events=("start", "end")):
            if element.tag == MAIN + "cellXfs":
                in_cell_styles = event == "start"
            elif event == "end" and element.tag == MAIN + "numFmt":
                custom[int(element.get("numFmtId") or 0)] = element.get("formatCode") or ""
            elif event == "end" and element.tag == MAIN + "xf" and in_cell_styles:
                style_formats.append(int(element.get("numFmtId") or 0))
    return frozenset(str(index) for index, format_id in enumerate(style_formats)
                     if format_id in DATE_FORMAT_IDS
                     or (format_id in custom and _DATE_TOKENS.search(_FORMAT_LITERALS.sub("", custom[format_id]))))
