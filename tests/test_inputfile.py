"""Input files: real XLSX files written with openpyxl and CSV files in both separators and encodings."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import openpyxl
import pytest

import anonapi.inputfile
from anonapi.exceptions import FileLockedError, InputFileError
from anonapi.inputfile import InputColumn, decode_text, normalize_header, read_input_file, read_text_file


def write_xlsx(path: Path, rows: List[List[object]], first_sheet_title: str = "Sheet1") -> Path:
    """Write ``rows`` to the first sheet of a new workbook, starting at A1."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = first_sheet_title
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def write_csv(path: Path, lines: List[str], delimiter: str = ",", encoding: str = "utf-8", bom: bool = False) -> Path:
    text = "\r\n".join(line.replace("|", delimiter) for line in lines) + "\r\n"
    data = text.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def folders_and_pseudonyms(table) -> List[tuple]:
    return [(row.folder, row.pseudonym) for row in table.rows]


TUTORIAL_ROWS: List[List[Optional[object]]] = [
    ["Some text here does not matter"],
    ["The column 'project' below will also just be ignored"],
    [],
    ["accession_number", "pseudonym", "project"],
    ["1234567.12345678", "studyA", "some_projectA"],
    ["2234567.12345678", "studyB", "some_projectB"],
    ["3234567.12345678", "studyC", "some_projectB"],
]


def test_xlsx_header_below_text(tmp_path):
    path = write_xlsx(tmp_path / "accession_numbers.xlsx", TUTORIAL_ROWS)
    table = read_input_file(path, InputColumn.ACCESSION_NUMBER)
    assert [(row.accession_number, row.pseudonym) for row in table.rows] == [
        ("1234567.12345678", "studyA"),
        ("2234567.12345678", "studyB"),
        ("3234567.12345678", "studyC"),
    ]


def test_xlsx_header_row_number(tmp_path):
    path = write_xlsx(tmp_path / "accession_numbers.xlsx", TUTORIAL_ROWS)
    assert read_input_file(path, InputColumn.ACCESSION_NUMBER).header_row_number == 4


def test_xlsx_row_numbers_as_excel_shows(tmp_path):
    path = write_xlsx(tmp_path / "accession_numbers.xlsx", TUTORIAL_ROWS)
    assert [row.row_number for row in read_input_file(path, InputColumn.ACCESSION_NUMBER).rows] == [5, 6, 7]


def test_xlsx_ignores_other_columns(tmp_path):
    rows = [
        ["Columns with headers that are not recognized are ignored"],
        ["folder", "value", "pseudonym", "comment"],
        ["folder1", "A", "studyA", None],
        ["folder2/st1", "A", "studyB", "this column"],
        ["folder2/st2", "B", "studyC", "will be ignored"],
    ]
    table = read_input_file(write_xlsx(tmp_path / "folders.xlsx", rows), InputColumn.FOLDER)
    assert folders_and_pseudonyms(table) == [("folder1", "studyA"), ("folder2/st1", "studyB"), ("folder2/st2", "studyC")]


def test_xlsx_without_pseudonym_column(tmp_path):
    table = read_input_file(write_xlsx(tmp_path / "f.xlsx", [["folder"], ["p1"], ["p2"]]), InputColumn.FOLDER)
    assert folders_and_pseudonyms(table) == [("p1", None), ("p2", None)]


def test_xlsx_reads_first_sheet(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.append(["folder"])
    workbook.active.append(["from_first_sheet"])
    second = workbook.create_sheet("second")
    second.append(["folder"])
    second.append(["from_second_sheet"])
    workbook.active = 1
    workbook.save(tmp_path / "f.xlsx")
    table = read_input_file(tmp_path / "f.xlsx", InputColumn.FOLDER)
    assert folders_and_pseudonyms(table) == [("from_first_sheet", None)]


def test_xlsx_skips_empty_rows(tmp_path):
    rows = [["folder", "pseudonym"], ["p1", "A"], [], [None, None], ["p2", "B"]]
    table = read_input_file(write_xlsx(tmp_path / "f.xlsx", rows), InputColumn.FOLDER)
    assert folders_and_pseudonyms(table) == [("p1", "A"), ("p2", "B")]


def test_xlsx_partial_row_names_excel_row(tmp_path):
    rows = [["title"], ["folder", "pseudonym"], ["p1", "A"], ["p2", None], ["p3", "C"]]
    path = write_xlsx(tmp_path / "f.xlsx", rows)
    with pytest.raises(InputFileError) as raised:
        read_input_file(path, InputColumn.FOLDER)
    message = str(raised.value)
    assert "row 4" in message
    assert "folder 'p2'" in message
    assert "Fill in the pseudonym, or clear the row" in message
    assert str(path) in message


def test_xlsx_partial_row_missing_required(tmp_path):
    rows = [["folder", "pseudonym"], [None, "A"]]
    with pytest.raises(InputFileError, match="row 2: pseudonym 'A' is given but the folder is empty"):
        read_input_file(write_xlsx(tmp_path / "f.xlsx", rows), InputColumn.FOLDER)


def test_xlsx_formula_without_value_named(tmp_path):
    # openpyxl saves formulas without a computed value; Excel would store one.
    rows = [["folder", "pseudonym"], ["p1", '=CONCATENATE("anon", "1")']]
    with pytest.raises(InputFileError, match="holds a formula whose value was never saved"):
        read_input_file(write_xlsx(tmp_path / "f.xlsx", rows), InputColumn.FOLDER)


def test_xlsx_formula_column_ignored(tmp_path):
    rows = [["folder", "pseudonym", "check"], ["p1", "A", "=LEN(A2)"]]
    table = read_input_file(write_xlsx(tmp_path / "f.xlsx", rows), InputColumn.FOLDER)
    assert folders_and_pseudonyms(table) == [("p1", "A")]


def test_xlsx_numbers_as_text(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["acc nr", "pseudoID"])
    sheet.append([12345678.1234567, 17])
    sheet.append([1234567.123456, 3.0])
    sheet["A3"].number_format = "0.0000000"
    workbook.save(tmp_path / "numbers.xlsx")
    table = read_input_file(tmp_path / "numbers.xlsx", InputColumn.ACCESSION_NUMBER)
    assert [(row.accession_number, row.pseudonym) for row in table.rows] == [
        ("12345678.1234567", "17"),
        ("1234567.1234560", "3"),
    ]


@pytest.mark.parametrize(
    "header",
    ["accession number", "Accession Number", "accession_number", "accession-number", "AccessionNumber", "acc nr", "Acc. Nr."],
)
def test_accession_number_headers(header, tmp_path):
    path = write_xlsx(tmp_path / "a.xlsx", [[header], ["123"]])
    assert [row.accession_number for row in read_input_file(path, InputColumn.ACCESSION_NUMBER).rows] == ["123"]


@pytest.mark.parametrize("header", ["folder", "Folder", "map", "PATH"])
def test_folder_headers(header, tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [[header], ["p1"]])
    assert [row.folder for row in read_input_file(path, InputColumn.FOLDER).rows] == ["p1"]


@pytest.mark.parametrize("header", ["pseudoID", "pseudo_id", "Pseudonym", "name", "pseudo_name"])
def test_pseudonym_headers(header, tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [["folder", header], ["p1", "anon1"]])
    assert [row.pseudonym for row in read_input_file(path, InputColumn.FOLDER).rows] == ["anon1"]


def test_normalize_header():
    assert normalize_header(" Acc. Nr_-x ") == "accnrx"


def test_missing_column_says_which_headers(tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [["patient", "pseudonym"], ["p1", "A"]])
    with pytest.raises(InputFileError, match="No folder column found .* Add a header cell 'folder', 'map' or 'path'"):
        read_input_file(path, InputColumn.FOLDER)


def test_two_pseudonym_columns_rejected(tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [["folder", "pseudonym", "name"], ["p1", "A", "B"]])
    with pytest.raises(InputFileError, match=r"row 1: the headers 'pseudonym' \(cell B1\), 'name' \(cell C1\)"):
        read_input_file(path, InputColumn.FOLDER)


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiters(delimiter, tmp_path):
    lines = ["Some text", "", "folder|pseudonym|project", "p1|A|x", "p2|B|y"]
    path = write_csv(tmp_path / "f.csv", lines, delimiter=delimiter)
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("p1", "A"), ("p2", "B")]


def test_csv_semicolon_with_commas_in_values(tmp_path):
    path = write_csv(tmp_path / "f.csv", ["folder;pseudonym", "p1,a;A,1"], delimiter=";")
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("p1,a", "A,1")]


def test_csv_utf8_bom(tmp_path):
    path = write_csv(tmp_path / "f.csv", ["folder,pseudonym", "p1,Zoë"], bom=True)
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("p1", "Zoë")]


def test_csv_windows_1252(tmp_path):
    path = write_csv(tmp_path / "f.csv", ["folder;pseudonym", "café;Zoë"], delimiter=";", encoding="cp1252")
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("café", "Zoë")]


def test_csv_partial_row_names_line(tmp_path):
    path = write_csv(tmp_path / "f.csv", ["note", "folder,pseudonym", "p1,A", ",B"])
    with pytest.raises(InputFileError, match="line 4: pseudonym 'B' is given but the folder is empty"):
        read_input_file(path, InputColumn.FOLDER)


def test_csv_surrounding_spaces(tmp_path):
    path = write_csv(tmp_path / "f.csv", [" Folder , Pseudonym ", " p1 ,  A  "])
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("p1", "A")]


def test_xls_rejected(tmp_path):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputFileError, match="save it as .xlsx or .csv"):
        read_input_file(path, InputColumn.FOLDER)


def test_broken_xlsx_rejected(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 damaged zip file")
    with pytest.raises(InputFileError, match="Cannot read .* as an Excel workbook"):
        read_input_file(path, InputColumn.FOLDER)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_input_file(tmp_path / "absent.csv", InputColumn.FOLDER)


def test_locked_csv(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "f.csv", ["folder", "p1"])

    def open_held_by_excel(*args, **kwargs):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(anonapi.inputfile, "open", open_held_by_excel, raising=False)
    with pytest.raises(FileLockedError, match="close it in the other program and try again"):
        read_input_file(path, InputColumn.FOLDER)


def test_locked_xlsx(tmp_path, monkeypatch):
    path = write_xlsx(tmp_path / "f.xlsx", [["folder"], ["p1"]])

    def load_held_by_excel(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(openpyxl, "load_workbook", load_held_by_excel)
    with pytest.raises(FileLockedError, match="close it in the other program and try again"):
        read_input_file(path, InputColumn.FOLDER)


def test_decode_text_bom():
    assert decode_text(b"\xef\xbb\xbfabc") == "abc"


def test_decode_text_windows_1252():
    assert decode_text("Zoë".encode("cp1252")) == "Zoë"


def test_read_text_file_undecodable(tmp_path):
    # 0x81 is undefined in Windows-1252 and invalid as a start byte in UTF-8.
    path = tmp_path / "f.csv"
    path.write_bytes(b"folder\n\x81\n")
    with pytest.raises(InputFileError, match="byte 8 is neither UTF-8 nor Windows-1252"):
        read_text_file(path)


# --- files by content, not by extension ---


def test_csv_named_xlsx_read_as_csv(tmp_path):
    path = write_csv(tmp_path / "folders.xlsx", ["folder;pseudonym", "p1;A"], delimiter=";")
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("p1", "A")]


def test_csv_named_xlsx_error_note(tmp_path):
    path = write_csv(tmp_path / "folders.xlsx", ["study;pseudonym", "p1;A"])
    with pytest.raises(InputFileError, match="read as CSV text, because it is not an Excel workbook"):
        read_input_file(path, InputColumn.FOLDER)


def test_xlsx_named_csv_read_as_workbook(tmp_path):
    path = write_xlsx(tmp_path / "folders.csv", [["folder", "pseudonym"], ["p1", "A"]])
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("p1", "A")]


def test_ods_rejected(tmp_path):
    import zipfile

    path = tmp_path / "folders.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    with pytest.raises(InputFileError, match="it is an OpenDocument spreadsheet"):
        read_input_file(path, InputColumn.FOLDER)


def test_ods_extension_rejected(tmp_path):
    path = tmp_path / "folders.ods"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputFileError, match=r"OpenDocument spreadsheets \(.ods\) are not supported"):
        read_input_file(path, InputColumn.FOLDER)


@pytest.mark.parametrize("name", ["folders.csv", "folders.xlsx"])
def test_empty_file_rejected(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InputFileError, match="is empty"):
        read_input_file(path, InputColumn.FOLDER)


def test_binary_file_rejected(tmp_path):
    path = tmp_path / "folders.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputFileError, match="it is neither CSV text nor an .xlsx workbook"):
        read_input_file(path, InputColumn.FOLDER)


def test_folder_given_as_input_file(tmp_path):
    with pytest.raises(InputFileError, match="is a folder"):
        read_input_file(tmp_path, InputColumn.FOLDER)


def test_utf16_tab_separated(tmp_path):
    # Excel's "Unicode text" format.
    path = tmp_path / "folders.txt"
    path.write_bytes("folder\tpseudonym\r\ncafé\tZoë\r\n".encode("utf-16"))
    assert folders_and_pseudonyms(read_input_file(path, InputColumn.FOLDER)) == [("café", "Zoë")]


# --- workbook details ---


def test_missing_column_names_first_sheet(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.title = "Notes"
    workbook.create_sheet("Folders").append(["folder"])
    workbook.save(tmp_path / "folders.xlsx")
    with pytest.raises(InputFileError, match="on its first sheet 'Notes'; other sheets are not read"):
        read_input_file(tmp_path / "folders.xlsx", InputColumn.FOLDER)


def test_merged_cell_hint(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["folder", "pseudonym"])
    sheet.append(["p1", "A"])
    sheet.append(["p2", None])
    sheet.merge_cells("B2:B3")
    workbook.save(tmp_path / "folders.xlsx")
    with pytest.raises(InputFileError, match="row 3: .* Cell B3 is part of the merged cells B2:B3"):
        read_input_file(tmp_path / "folders.xlsx", InputColumn.FOLDER)


@pytest.mark.parametrize(
    "value, number_format, expected",
    [(7, "000", "007"), (7.0, "00000", "00007"), (1234.567, "0.0000", "1234.5670"), (2.5, "0", "3"), (7, "General", "7")],
)
def test_number_formats_as_excel(tmp_path, value, number_format, expected):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["accession number"])
    sheet.append([value])
    sheet["A2"].number_format = number_format
    workbook.save(tmp_path / "numbers.xlsx")
    table = read_input_file(tmp_path / "numbers.xlsx", InputColumn.ACCESSION_NUMBER)
    assert table.rows[0].accession_number == expected


# --- pseudonyms that conflict within the file ---


def test_same_folder_two_pseudonyms(tmp_path):
    path = write_csv(tmp_path / "f.csv", ["folder,pseudonym", "p1,A", "p1\\,B"])
    with pytest.raises(InputFileError, match="line 3: folder 'p1\\\\' has pseudonym 'B', but line 2 gives it pseudonym 'A'"):
        read_input_file(path, InputColumn.FOLDER)


def test_same_pseudonym_two_accession_numbers(tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [["acc nr", "pseudonym"], ["111", "X"], ["222", "X"]])
    with pytest.raises(InputFileError, match="row 3: pseudonym 'X' is also used for accession number '111' on row 2"):
        read_input_file(path, InputColumn.ACCESSION_NUMBER)


def test_repeated_row_allowed(tmp_path):
    path = write_csv(tmp_path / "f.csv", ["folder,pseudonym", "p1,A", "p1/,A"])
    assert len(read_input_file(path, InputColumn.FOLDER).rows) == 2
