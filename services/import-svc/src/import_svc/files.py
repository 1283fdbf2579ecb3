"""Reading uploaded files: encoding and delimiter detection, then rows in batches.

CSV is read with the stdlib `csv` module over a streaming decoder rather than polars/pyarrow:
imports must report ragged rows one by one (INCORRECT_NUMBER_OF_COLUMNS with their line number)
and keep going, and both columnar readers either fail the whole file or silently pad/truncate
such rows. The C tokenizer of `csv` reads ~1M short rows/s on one core, well above what the
records write path sustains, so the parse is never the bottleneck (see bench/README "Imports").
XLSX is streamed from its XML (`xlsx.py`, constant memory); XLS, XLSB and ODS are read with
python-calamine. Always the first sheet.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from import_svc import xlsx

MAX_ROWS = 1_048_576
MAX_BYTES = 512 * 1024 * 1024
MAX_COLUMNS = 999  # "fewer than 1,000 columns"
SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".xlsb", ".ods")
_SNIFF_BYTES = 256 * 1024
_DELIMITERS = [",", ";", "\t", "|"]

csv.field_size_limit(16 * 1024 * 1024)


class FileProblem(Exception):
    """A file the import cannot read at all (wrong format, too big, too many columns)."""


@dataclass
class FileLayout:
    file_format: str  # CSV | SPREADSHEET
    encoding: str | None = None
    delimiter: str | None = None
    header: list[str] | None = None
    data_rows: int = 0


def is_spreadsheet(file_name: str, declared_format: str | None = None) -> bool:
    if (declared_format or "").upper() == "SPREADSHEET":
        return True
    return file_name.lower().endswith(SPREADSHEET_SUFFIXES)


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes strictly; otherwise a detected legacy one."""
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass
        fh.seek(0)
        sample = fh.read(_SNIFF_BYTES * 4)
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    encoding = best.encoding if best is not None else "cp1252"
    # charset-normalizer often names a close cousin of Windows-1252 for Western text; cp1252 is a
    # superset of latin-1 for the printable range, which is what spreadsheet exports use.
    if encoding in {"latin_1", "iso8859_1", "iso8859_15", "cp1250", "mac_roman", "cp850"}:
        try:
            sample.decode("cp1252")
            encoding = "cp1252"
        except UnicodeDecodeError:
            pass
    return encoding


def detect_delimiter(text_sample: str) -> str:
    lines = text_sample.splitlines()[:50]
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def inspect(path: Path, file_name: str, declared_format: str | None = None, *, count_rows: bool = True) -> FileLayout:
    """Format, encoding, delimiter, header and (optionally) the number of data rows."""
    if is_spreadsheet(file_name, declared_format):
        layout = FileLayout(file_format="SPREADSHEET")
    else:
        encoding = detect_encoding(path)
        with path.open("r", encoding=encoding, errors="replace", newline="") as fh:
            sample = fh.read(_SNIFF_BYTES)
        layout = FileLayout(file_format="CSV", encoding=encoding, delimiter=detect_delimiter(sample))
    rows = iter_rows(path, layout)
    try:
        first = next(rows)
    except StopIteration:
        raise FileProblem("The file is empty") from None
    except Exception as exc:  # noqa: BLE001  (calamine on a non-spreadsheet raises its own types)
        raise FileProblem(f"The file {file_name} could not be read: {exc}") from None
    layout.header = [c.strip() for c in first[1]]
    if len(layout.header) > MAX_COLUMNS:
        raise FileProblem(f"The file {file_name} has {len(layout.header)} columns; files must have fewer than "
                          f"1,000 columns")
    if count_rows and layout.file_format == "SPREADSHEET" and xlsx.is_xlsx(path):
        layout.data_rows = xlsx.count_data_rows(path)  # the sheet's XML scanned, not parsed
    elif count_rows:
        count = 0
        for _ in rows:
            count += 1
            if count > MAX_ROWS:
                raise FileProblem(f"The file {file_name} has more than {MAX_ROWS:,} rows; split it into "
                                  f"smaller files")
        layout.data_rows = count
    return layout


def iter_rows(path: Path, layout: FileLayout) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every non-blank row, header included; line 1 is the first row."""
    if layout.file_format == "SPREADSHEET":
        yield from _iter_spreadsheet(path)
        return
    with path.open("r", encoding=layout.encoding or "utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=layout.delimiter or ",")
        line = 0
        for cells in reader:
            line += 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            yield line, cells


def _iter_spreadsheet(path: Path) -> Iterator[tuple[int, list[str]]]:
    if xlsx.is_xlsx(path):
        try:
            yield from xlsx.iter_rows(path)
        except (xlsx.UnreadableSheet, xlsx.NotAnXlsxWorkbook) as exc:
            raise FileProblem(str(exc)) from None
        return
    # XLS, XLSB and ODS: calamine reads the whole sheet first (these files are small in practice: XLS
    # holds at most 65,536 rows).
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(str(path))
    sheet = workbook.get_sheet_by_index(0)
    line = 0
    for values in sheet.iter_rows():
        line += 1
        cells = [_cell_text(v) for v in values]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        yield line, cells


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == time.min:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def batches(path: Path, layout: FileLayout, *, size: int, skip_data_rows: int = 0,
            has_header: bool = True) -> Iterator[list[tuple[int, list[str]]]]:
    """Data rows in batches, after skipping the first `skip_data_rows` (a checkpoint)."""
    rows = iter_rows(path, layout)
    if has_header:
        next(rows, None)
    skipped = 0
    batch: list[tuple[int, list[str]]] = []
    for row in rows:
        if skipped < skip_data_rows:
            skipped += 1
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def sample_text(path: Path, layout: FileLayout, limit: int = 4) -> list[list[str]]:
    out = []
    for _, cells in iter_rows(path, layout):
        out.append(cells)
        if len(out) >= limit:
            break
    return out


