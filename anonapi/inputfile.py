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
file selections): UTF-8 with or without byte order mark, or Windows-1252.
"""

from __future__ import annotations

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
EXCEL_EXTENSIONS = (".xlsx", ".xlsm")


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
        raise InputFileError(f"Input file '{path}' not found. Check the path.")
    suffix = path.suffix.lower()
    if suffix in EXCEL_EXTENSIONS:
        cell_rows = _read_xlsx_rows(path)
    elif suffix == ".xls":
        raise InputFileError(
            f"Cannot read '{path}': the old Excel format .xls is not supported. "
            f"Open it in Excel and save it as .xlsx or .csv."
        )
    else:
        cell_rows = _read_csv_rows(path, required)
    return _build_table(path, cell_rows, required, list(optional), is_excel=suffix in EXCEL_EXTENSIONS)


def decode_text(data: bytes) -> str:
    """Decode a text file as Excel and editors save it: UTF-8 with or without BOM, else Windows-1252.

    :raises UnicodeDecodeError: if the bytes fit none of these
    """
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM):].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def read_text_file(path: os.PathLike | str, error_class: Type[AnonAPIError] = InputFileError) -> str:
    """Read and decode a text file (see decode_text), translating errors to anonapi errors.

    :raises FileLockedError: if another program holds the file open
    :raises error_class: if the file is missing or its encoding is unknown
    """
    data = read_bytes(path, error_class)
    try:
        return decode_text(data)
    except UnicodeDecodeError as error:
        raise error_class(
            f"Cannot read '{path}': byte {error.start + 1} is neither UTF-8 nor Windows-1252 text. "
            f"Save the file as UTF-8 (in Excel: CSV UTF-8) and try again."
        ) from error


def read_bytes(path: os.PathLike | str, error_class: Type[AnonAPIError] = InputFileError) -> bytes:
    """Read a whole file, turning a file held open by another program into FileLockedError."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
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


def _read_xlsx_rows(path: Path) -> List[_CellRow]:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except PermissionError as error:
        raise FileLockedError(
            f"Cannot open '{path}': permission denied. If another program such as Excel has it open, "
            f"close it in the other program and try again."
        ) from error
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise InputFileError(
            f"Cannot read '{path}' as an Excel workbook ({error}). Open it in Excel and save it as .xlsx or .csv."
        ) from error
    try:
        sheet = workbook.worksheets[0]
        rows: List[_CellRow] = []
        for number, cells in enumerate(sheet.iter_rows(), start=1):
            row_number = next((cell.row for cell in cells if getattr(cell, "row", None)), number)
            values = [cell.value for cell in cells]
            formats = [getattr(cell, "number_format", "General") or "General" for cell in cells]
            rows.append((row_number, values, formats))
        return rows
    finally:
        workbook.close()


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
    return table


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
    raise InputFileError(
        f"No {required.value} column found in input file '{path}'. Add a header cell "
        f"{_DISPLAY_NAMES[required]} above the {required.value} values."
    )


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
    if is_excel and _has_uncached_formula(path, row_number, [positions[column] for column in empty]):
        message += " The empty cell holds a formula whose value was never saved: open the file in Excel and save it."
    return InputFileError(message)


def _has_uncached_formula(path: Path, row_number: int, positions: List[int]) -> bool:
    """Return True if one of the cells contains a formula, whose value openpyxl cannot compute."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception:  # noqa: BLE001 - only used to improve a message that is raised anyway
        return False
    try:
        sheet = workbook.worksheets[0]
        for row in sheet.iter_rows(min_row=row_number, max_row=row_number):
            for position in positions:
                if position < len(row) and isinstance(row[position].value, str) and row[position].value.startswith("="):
                    return True
        return False
    finally:
        workbook.close()


def _cell_reference(position: int, row_number: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"cell {get_column_letter(position + 1)}{row_number}"


def _cell_text(value: object, number_format: str) -> str:
    """Return a cell value as the text Excel shows, for numbers as exactly as the stored value allows."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        decimals = re.fullmatch(r"0\.(0+)", number_format or "")
        if decimals:
            return f"{value:.{len(decimals.group(1))}f}"
        if value.is_integer():
            return str(int(value))
        # NOTE: Excel stores numbers as doubles, so an accession number typed
        # as a number loses trailing zeros (1234.5670 becomes 1234.567) unless
        # the cell is formatted as text or with fixed decimals.
        return repr(value)
    return str(value).strip()
