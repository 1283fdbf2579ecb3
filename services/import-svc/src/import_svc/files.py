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
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from crm_common.inputs import abridged

from import_svc import xlsx

MAX_ROWS = 1_048_576
MAX_BYTES = 512 * 1024 * 1024
MAX_COLUMNS = 999  # "fewer than 1,000 columns"
# No property holds more than 65,536 characters; a cell or a line a thousand times longer is no CRM data,
# and reading it whole would let one upload take gigabytes (a quote that never closes swallows the file).
MAX_CELL_CHARS = 1024 * 1024
MAX_LINE_CHARS = 4 * MAX_CELL_CHARS
SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".xlsb", ".ods")
_SNIFF_BYTES = 256 * 1024
_DELIMITERS = [",", ";", "\t", "|"]
# A file whose lines are UTF-8 except some in Windows-1252 (exports appended to one another): each line is
# decoded as what it is (see `detect_encoding`).
MIXED_UTF8_CP1252 = "utf-8+cp1252"

csv.field_size_limit(MAX_CELL_CHARS)


class FileProblem(Exception):
    """A file the import cannot read at all (wrong format, too big, too many columns)."""


@dataclass
class FileLayout:
    file_format: str  # CSV | SPREADSHEET
    encoding: str | None = None
    delimiter: str | None = None
    header: list[str] | None = None
    data_rows: int = 0
    # What the reader had to say about the file (lines decoded as Windows-1252 in a UTF-8 file, ...).
    warnings: list[str] = field(default_factory=list)


def is_spreadsheet(file_name: str, declared_format: str | None = None) -> bool:
    if (declared_format or "").upper() == "SPREADSHEET":
        return True
    return file_name.lower().endswith(SPREADSHEET_SUFFIXES)


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes strictly; MIXED_UTF8_CP1252 when some lines
    are UTF-8 with non-ASCII text and others are not UTF-8 at all; otherwise a detected legacy one.

    A mixed file is decoded line by line rather than warned about and read in one encoding: whichever
    encoding is chosen for the whole file garbles the other part (é read as Ã© or the other way), and a
    line of a legacy export that happens to be valid UTF-8 with non-ASCII letters is rare enough (Ã©,
    Â£) that the line-by-line reading is right for practically every row. The preview names the lines.
    """
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
        if _has_utf8_text(path):
            return MIXED_UTF8_CP1252
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


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _binary_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while line := fh.readline(MAX_LINE_CHARS + 1):
            yield line


def _has_utf8_text(path: Path) -> bool:
    """Whether some line is valid UTF-8 with non-ASCII characters (not only ASCII and legacy bytes)."""
    for line in _binary_lines(path):
        if not line.isascii() and _UTF8_MULTIBYTE.search(line):
            try:
                line.decode("utf-8")
                return True
            except UnicodeDecodeError:
                continue
    return False


def legacy_lines(path: Path, *, limit: int) -> list[int]:
    """Numbers of the (physical) lines that are not UTF-8, the first `limit` of them."""
    found = []
    for number, line in enumerate(_binary_lines(path), 1):
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                found.append(number)
                if len(found) >= limit:
                    break
    return found


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
        sample = "".join(line for _, line in zip(range(200), _text_lines(path, encoding), strict=False))
        layout = FileLayout(file_format="CSV", encoding=encoding, delimiter=detect_delimiter(sample[:_SNIFF_BYTES]))
        if encoding == MIXED_UTF8_CP1252:
            lines = legacy_lines(path, limit=11)
            shown = ", ".join(str(n) for n in lines[:10]) + (" and more" if len(lines) > 10 else "")
            layout.warnings.append(f"The file mixes encodings: line(s) {shown} are not UTF-8 and were read as "
                                   f"Windows-1252, every other line as UTF-8")
    rows = iter_rows(path, layout)
    try:
        first = next(rows)
    except StopIteration:
        raise FileProblem("The file is empty") from None
    except FileProblem:
        raise
    except Exception as exc:  # noqa: BLE001  (calamine on a non-spreadsheet raises its own types)
        raise FileProblem(f"The file {file_name} could not be read: {abridged(str(exc))}") from None
    layout.header = [c.strip() for c in first[1]]
    if len(layout.header) > MAX_COLUMNS:
        raise FileProblem(f"The file {file_name} has {len(layout.header)} columns; files must have fewer than "
                          f"1,000 columns")
    if count_rows and layout.file_format == "SPREADSHEET" and xlsx.is_xlsx(path):
        try:
            layout.data_rows = xlsx.count_data_rows(path)  # the sheet's XML scanned, not parsed
        except xlsx.UnreadableSheet as exc:
            raise FileProblem(str(exc)) from None
        except xlsx.TooManyRows:
            layout.data_rows = MAX_ROWS + 1
        if layout.data_rows > MAX_ROWS:
            raise FileProblem(f"The file {file_name} has more than {MAX_ROWS:,} rows; split it into "
                              f"smaller files")
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
    reader = csv.reader(_text_lines(path, layout.encoding or "utf-8"), delimiter=layout.delimiter or ",")
    line = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # field larger than field limit: a cell past MAX_CELL_CHARS, often a quote that never closes
            raise FileProblem(f"Line {reader.line_num} could not be read: {exc} (a cell holds at most "
                              f"{MAX_CELL_CHARS:,} characters; is a quote left open?)") from None
        line += 1
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        yield line, cells


def _text_lines(path: Path, encoding: str) -> Iterator[str]:
    """The file's lines as text, none longer than MAX_LINE_CHARS (a file without line breaks is not read
    whole into one string)."""
    if encoding == MIXED_UTF8_CP1252:
        lines: Iterator[str | bytes] = _binary_lines(path)
    else:
        lines = _decoded_lines(path, encoding)
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise FileProblem(f"Line {number} is longer than {MAX_LINE_CHARS:,} characters")
        yield line if isinstance(line, str) else _decode_line(line)


def _decoded_lines(path: Path, encoding: str) -> Iterator[str]:
    with path.open("r", encoding=encoding, errors="replace", newline="") as fh:
        while line := fh.readline(MAX_LINE_CHARS + 1):
            yield line


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


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


