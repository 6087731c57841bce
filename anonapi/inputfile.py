"""Input files: CSV or XLSX tables of folders, accession numbers and pseudonyms.

Researchers keep their list of studies in Excel. anonapi reads the first
sheet of an XLSX file (cell values, not formulas) or a CSV file separated by
commas, semicolons or tabs. The header row may sit below other text, and
columns are found by their header, ignoring case, spaces, ``_``, ``-`` and
``.``:

=================  =======================================
column             accepted headers
=================  =======================================
accession number   accession number, acc nr
folder             folder, map, path
pseudonym          pseudoID, pseudonym, name, pseudo_name
=================  =======================================

Other columns and text are ignored. A row with some of the requested
columns filled and others empty is an error that gives the row number as
Excel shows it.

This module also reads the text files that users edit in Excel (mappings,
file selections): UTF-8 with or without byte order mark, UTF-16 with byte
order mark, or Windows-1252.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Type

from anonapi.exceptions import AnonAPIError, FileLockedError, InputFileError

UTF8_BOM = b"\xef\xbb\xbf"
CSV_DELIMITERS = (",", ";", "\t")
# The first bytes of a zip file (.xlsx, .ods) and of an OLE2 compound file (.xls).
ZIP_SIGNATURE = b"PK\x03\x04"
OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OPEN_DOCUMENT_EXTENSIONS = (".ods", ".fods")


class InputColumn(str, enum.Enum):
    """A kind of column that anonapi reads from an input file."""

    ACCESSION_NUMBER = "accession number"
    FOLDER = "folder"
    PSEUDONYM = "pseudonym"


# Accepted headers per column, in the form normalize_header returns.
HEADER_NAMES: Dict[InputColumn, Tuple[str, ...]] = {
    InputColumn.ACCESSION_NUMBER: ("accessionnumber", "accnr"),
    InputColumn.FOLDER: ("folder", "map", "path"),
    InputColumn.PSEUDONYM: ("pseudoid", "pseudonym", "name", "pseudoname"),
}
_DISPLAY_NAMES: Dict[InputColumn, str] = {
    InputColumn.ACCESSION_NUMBER: "'accession number' or 'acc nr'",
    InputColumn.FOLDER: "'folder', 'map' or 'path'",
    InputColumn.PSEUDONYM: "'pseudonym', 'pseudoID' or 'name'",
}


@dataclass
class InputRow:
    """One data row of an input file: its row number as Excel shows it and its values."""

    row_number: int
    values: Dict[InputColumn, str]

    @property
    def accession_number(self) -> Optional[str]:
        return self.values.get(InputColumn.ACCESSION_NUMBER)

    @property
    def folder(self) -> Optional[str]:
        return self.values.get(InputColumn.FOLDER)

    @property
    def pseudonym(self) -> Optional[str]:
        return self.values.get(InputColumn.PSEUDONYM)


@dataclass
class InputTable:
    """The requested columns of an input file: where the header is and the rows below it."""

    path: Path
    header_row_number: int
    columns: List[InputColumn]
    rows: List[InputRow] = field(default_factory=list)

    def has_column(self, column: InputColumn) -> bool:
        return column in self.columns


def normalize_header(text: object) -> str:
    """Return a header without case, spaces, ``_``, ``-`` and ``.``, for matching."""
    return re.sub(r"[\s_.\-]+", "", str(text)).lower()


def read_input_file(
    path: os.PathLike | str,
    required: InputColumn,
    optional: Sequence[InputColumn] = (InputColumn.PSEUDONYM,),
) -> InputTable:
    """Read the ``required`` column and any ``optional`` columns from a CSV or XLSX file.

    :raises InputFileError: if the file cannot be read, has no ``required``
        column, or has a partly filled row. The message names the file, the
        row and the fix.
    :raises FileLockedError: if another program holds the file open
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise InputFileError(f"Input file '{path}' is a folder. Give the path of a CSV or XLSX file.")
        raise InputFileError(f"Input file '{path}' not found. Check the path.")
    file_format = _detect_format(path)
    sheet_note = ""
    if file_format == "xlsx":
        cell_rows, sheet_note = _read_xlsx_rows(path)
    else:
        cell_rows = _read_csv_rows(path, required)
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            sheet_note = " (read as CSV text, because it is not an Excel workbook)"
    try:
        return _build_table(path, cell_rows, required, list(optional), is_excel=file_format == "xlsx")
    except _NoHeaderError:
        raise InputFileError(
            f"No {required.value} column found in input file '{path}'{sheet_note}. Add a header cell "
            f"{_DISPLAY_NAMES[required]} above the {required.value} values."
        ) from None


def _detect_format(path: Path) -> str:
    """Return "xlsx" or "csv" from the first bytes of the file, regardless of its extension.

    Files get renamed: a CSV saved as ``list.xlsx`` is read as CSV, and an
    .xlsx saved as ``list.csv`` is read as a workbook.

    :raises InputFileError: if the file is empty or in a format that cannot be read (.xls, .ods)
    """
    if path.suffix.lower() in OPEN_DOCUMENT_EXTENSIONS:
        raise InputFileError(
            f"Cannot read '{path}': OpenDocument spreadsheets (.ods) are not supported. "
            f"Open it in LibreOffice or Excel and save it as .xlsx or .csv."
        )
    start = read_bytes(path, size=512)
    if not start:
        raise InputFileError(
            f"Input file '{path}' is empty. Save the list in it first, in Excel or as CSV, and try again."
        )
    # The first 4 bytes of the signature suffice: no text file starts with them.
    if start.startswith(OLE2_SIGNATURE[:4]):
        raise InputFileError(
            f"Cannot read '{path}': it is in the old Excel format (.xls), which is not supported. "
            f"Open it in Excel and save it as .xlsx or .csv."
        )
    if start.startswith(ZIP_SIGNATURE):
        if _is_open_document(path):
            raise InputFileError(
                f"Cannot read '{path}': it is an OpenDocument spreadsheet (.ods), which is not supported. "
                f"Open it in LibreOffice or Excel and save it as .xlsx or .csv."
            )
        return "xlsx"
    if b"\x00" in start and not start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputFileError(
            f"Cannot read '{path}': it is neither CSV text nor an .xlsx workbook. "
            f"Open it in Excel and save it as .xlsx or .csv."
        )
    return "csv"


def _is_open_document(path: Path) -> bool:
    """Return True for a zip file whose ``mimetype`` member names an OpenDocument type."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read("mimetype").startswith(b"application/vnd.oasis.opendocument")
    except (KeyError, OSError, zipfile.BadZipFile):
        return False


def decode_text(data: bytes) -> str:
    """Decode a text file as Excel and editors save it.

    That is UTF-8 with or without BOM, UTF-16 with BOM (Excel's "Unicode
    text"), or else Windows-1252.

    :raises UnicodeDecodeError: if the bytes fit none of these
    """
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM):].decode("utf-8")
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        # The "utf-16" codec reads the byte order from the BOM and drops it.
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def read_text_file(path: os.PathLike | str, error_class: Type[AnonAPIError] = InputFileError) -> str:
    """Read and decode a text file (see decode_text), translating errors to anonapi errors.

    :raises FileLockedError: if another program holds the file open
    :raises error_class: if the file is missing, binary (such as a workbook) or its encoding is unknown
    """
    data = read_bytes(path, error_class)
    if data.startswith((ZIP_SIGNATURE, OLE2_SIGNATURE[:4])):
        raise error_class(
            f"Cannot read '{path}': it is a spreadsheet workbook, not text. "
            f"Open it in Excel and save it as CSV UTF-8 under this name, or create it again."
        )
    if b"\x00" in data[:4096] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise error_class(f"Cannot read '{path}': it is not a text file. Check the path, or create the file again.")
    try:
        return decode_text(data)
    except UnicodeDecodeError as error:
        raise error_class(
            f"Cannot read '{path}': byte {error.start + 1} is neither UTF-8 nor Windows-1252 text. "
            f"Save the file as UTF-8 (in Excel: CSV UTF-8) and try again."
        ) from error


def read_bytes(path: os.PathLike | str, error_class: Type[AnonAPIError] = InputFileError, size: int = -1) -> bytes:
    """Read a whole file, or its first ``size`` bytes.

    :raises FileLockedError: if another program holds the file open
    :raises error_class: if the file is missing or is a folder
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except FileNotFoundError as error:
        raise error_class(f"File '{path}' not found. Check the path.") from error
    except IsADirectoryError as error:
        raise error_class(f"Cannot read '{path}': it is a folder, not a file. Give the path of a file.") from error
    except PermissionError as error:
        raise FileLockedError(
            f"Cannot open '{path}': permission denied. If another program such as Excel has it open, "
            f"close it in the other program and try again."
        ) from error


_CellRow = Tuple[int, List[object], List[str]]  # row number, values, number formats


def _read_csv_rows(path: Path, required: InputColumn) -> List[_CellRow]:
    text = read_text_file(path)
    best: Optional[Tuple[int, int, List[_CellRow]]] = None
    for delimiter in CSV_DELIMITERS:
        rows = [
            (number, list(cells), [])
            for number, cells in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1)
        ]
        score = _header_score(rows, required)
        if best is None or score > best[0]:
            best = (score, CSV_DELIMITERS.index(delimiter), rows)
    assert best is not None
    return best[2]


def _header_score(rows: List[_CellRow], required: InputColumn) -> int:
    """Count the known headers in the first row that has the required header, as a delimiter's score."""
    for _, cells, _ in rows:
        names = {normalize_header(cell) for cell in cells}
        if names & set(HEADER_NAMES[required]):
            return sum(1 for headers in HEADER_NAMES.values() if names & set(headers))
    return 0


class _NoHeaderError(Exception):
    """No row has a header for the required column."""


def _read_xlsx_rows(path: Path) -> Tuple[List[_CellRow], str]:
    """Return the rows of the first sheet, and a note naming that sheet if the workbook has others."""
    import zipfile
    from xml.parsers.expat import ExpatError

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    # What openpyxl raises for files that are not workbooks or are damaged.
    unreadable = (
        InvalidFileException,
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
        ExpatError,
        SyntaxError,
        OSError,
    )
    try:
        # A file object, because openpyxl rejects file names whose extension is not .xlsx or .xlsm.
        handle = open(path, "rb")
    except PermissionError as error:
        raise _locked_error(path) from error
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            sheet_note = ""
            if len(workbook.worksheets) > 1:
                sheet_note = f" (on its first sheet '{sheet.title}'; other sheets are not read)"
            rows: List[_CellRow] = []
            for number, cells in enumerate(sheet.iter_rows(), start=1):
                row_number = next((cell.row for cell in cells if getattr(cell, "row", None)), number)
                values = [cell.value for cell in cells]
                formats = [getattr(cell, "number_format", "General") or "General" for cell in cells]
                rows.append((row_number, values, formats))
            return rows, sheet_note
        finally:
            workbook.close()
    except PermissionError as error:
        raise _locked_error(path) from error
    except unreadable as error:
        raise InputFileError(
            f"Cannot read '{path}' as an Excel workbook ({error}). Open it in Excel and save it as .xlsx or .csv."
        ) from error
    finally:
        handle.close()


def _locked_error(path: Path) -> FileLockedError:
    return FileLockedError(
        f"Cannot open '{path}': permission denied. If another program such as Excel has it open, "
        f"close it in the other program and try again."
    )


def _build_table(
    path: Path, cell_rows: List[_CellRow], required: InputColumn, optional: List[InputColumn], is_excel: bool
) -> InputTable:
    header_index, positions = _find_header(path, cell_rows, required, optional)
    header_row_number = cell_rows[header_index][0]
    table = InputTable(path=path, header_row_number=header_row_number, columns=list(positions))
    for row_number, values, formats in cell_rows[header_index + 1:]:
        row_values: Dict[InputColumn, str] = {}
        for column, position in positions.items():
            value = values[position] if position < len(values) else None
            number_format = formats[position] if position < len(formats) else "General"
            text = _cell_text(value, number_format)
            if text:
                row_values[column] = text
        if not row_values:
            continue
        if len(row_values) < len(positions):
            raise _partial_row_error(path, row_number, positions, row_values, is_excel)
        table.rows.append(InputRow(row_number=row_number, values=row_values))
    if InputColumn.PSEUDONYM in positions and required != InputColumn.PSEUDONYM:
        _check_pseudonyms(table, required, "row" if is_excel else "line")
    return table


def _check_pseudonyms(table: InputTable, key_column: InputColumn, where: str) -> None:
    """Check that each value of ``key_column`` has one pseudonym, and each pseudonym one value.

    A row that repeats an earlier row exactly is allowed. Folders are
    compared ignoring ``/`` or ``\\`` at the end and the kind of separator.

    :raises InputFileError: naming the file, both rows and the values
    """
    pseudonym_by_key: Dict[str, Tuple[str, int]] = {}
    key_by_pseudonym: Dict[str, Tuple[str, int]] = {}
    for row in table.rows:
        key = row.values[key_column]
        pseudonym = row.values[InputColumn.PSEUDONYM]
        if key_column == InputColumn.FOLDER:
            key = key.replace("\\", "/").rstrip("/") or key
        earlier = pseudonym_by_key.setdefault(key, (pseudonym, row.row_number))
        if earlier[0] != pseudonym:
            raise InputFileError(
                f"Invalid input file '{table.path}', {where} {row.row_number}: {key_column.value} "
                f"'{row.values[key_column]}' has pseudonym '{pseudonym}', but {where} {earlier[1]} gives it "
                f"pseudonym '{earlier[0]}'. Keep one of the two {where}s."
            )
        earlier = key_by_pseudonym.setdefault(pseudonym, (key, row.row_number))
        if earlier[0] != key:
            raise InputFileError(
                f"Invalid input file '{table.path}', {where} {row.row_number}: pseudonym '{pseudonym}' is also "
                f"used for {key_column.value} '{earlier[0]}' on {where} {earlier[1]}. Give each "
                f"{key_column.value} its own pseudonym."
            )


def _find_header(
    path: Path, cell_rows: List[_CellRow], required: InputColumn, optional: List[InputColumn]
) -> Tuple[int, Dict[InputColumn, int]]:
    """Return the index of the header row and the position of each requested column in it."""
    requested = [required, *[column for column in optional if column != required]]
    for index, (row_number, values, _) in enumerate(cell_rows):
        names = [normalize_header(value) if value is not None else "" for value in values]
        if not any(name in HEADER_NAMES[required] for name in names):
            continue
        positions: Dict[InputColumn, int] = {}
        for column in requested:
            matches = [position for position, name in enumerate(names) if name in HEADER_NAMES[column]]
            if len(matches) > 1:
                cells = ", ".join(f"'{values[position]}' ({_cell_reference(position, row_number)})" for position in matches)
                raise InputFileError(
                    f"Invalid input file '{path}', row {row_number}: the headers {cells} all name the "
                    f"{column.value} column. Rename or remove all but one."
                )
            if matches:
                positions[column] = matches[0]
        return index, positions
    raise _NoHeaderError


def _partial_row_error(
    path: Path, row_number: int, positions: Dict[InputColumn, int], row_values: Dict[InputColumn, str], is_excel: bool
) -> InputFileError:
    filled = ", ".join(f"{column.value} '{row_values[column]}'" for column in positions if column in row_values)
    empty = [column for column in positions if column not in row_values]
    empty_names = " and ".join(column.value for column in empty)
    where = "row" if is_excel else "line"
    message = (
        f"Invalid input file '{path}', {where} {row_number}: {filled} is given but the {empty_names} "
        f"is empty. Fill in the {empty_names}, or clear the row."
    )
    if is_excel:
        message += _empty_cell_hint(path, row_number, [positions[column] for column in empty])
    return InputFileError(message)


def _empty_cell_hint(path: Path, row_number: int, positions: List[int]) -> str:
    """Explain why cells that look filled in Excel are empty to openpyxl, or return "".

    A formula has no value when the program that wrote the file never
    computed it, and only the first cell of merged cells contains the value.
    """
    import openpyxl
    from openpyxl.utils import get_column_letter

    try:
        with open(path, "rb") as handle:
            workbook = openpyxl.load_workbook(handle, data_only=False)
    except Exception:  # noqa: BLE001 - only used to improve a message that is raised anyway
        return ""
    sheet = workbook.worksheets[0]
    for position in positions:
        reference = f"{get_column_letter(position + 1)}{row_number}"
        value = sheet[reference].value
        if isinstance(value, str) and value.startswith("="):
            return " The empty cell holds a formula whose value was never saved: open the file in Excel and save it."
        for merged in sheet.merged_cells.ranges:
            if reference in merged:
                return (
                    f" Cell {reference} is part of the merged cells {merged.coord}, which share one value: "
                    f"unmerge them and fill in every row."
                )
    return ""


def _cell_reference(position: int, row_number: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"cell {get_column_letter(position + 1)}{row_number}"


def _cell_text(value: object, number_format: str) -> str:
    """Return a cell value as the text Excel shows, for numbers as exactly as the stored value allows."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, (int, float)):
        # A format of zeros, such as 000 or 0.0000, makes Excel show leading or trailing zeros.
        fixed = re.fullmatch(r"(0+)(?:\.(0+))?", number_format or "")
        if fixed:
            return _fixed_format_text(value, len(fixed.group(1)), len(fixed.group(2) or ""))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        # NOTE: Excel stores numbers as doubles, so an accession number typed
        # as a number loses trailing zeros (1234.5670 becomes 1234.567) unless
        # the cell is formatted as text or with fixed decimals.
        return repr(value)
    return str(value).strip()


def _fixed_format_text(value: float, digits: int, decimals: int) -> str:
    """Return ``value`` as Excel shows it in a format of ``digits`` zeros, a point and ``decimals`` zeros.

    Excel rounds halves away from zero, unlike Python's format().
    """
    from decimal import ROUND_HALF_UP, Decimal

    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    sign = "-" if rounded < 0 else ""
    return sign + whole.zfill(digits) + (f".{fraction}" if decimals else "")
