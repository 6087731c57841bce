"""Mapping files and source identifiers: every format rule, on real files in both CSV dialects and encodings."""

from __future__ import annotations

import datetime
import locale
from pathlib import Path

import pytest

import anonapi.fileio
from anonapi.exceptions import FileLockedError, MappingError
from anonapi.mapper import (
    Mapping,
    MappingFile,
    MappingOptions,
    MappingRow,
    check_new_pseudonyms,
    create_default_mapping,
    format_mapping,
    generate_pseudonym,
    local_csv_delimiter,
    parse_mapping,
)
from anonapi.parameters import (
    AccessionNumberIdentifier,
    FileSelectionIdentifier,
    FolderIdentifier,
    StudyInstanceUIDIdentifier,
    parse_source_identifier,
)

UPSTREAM_MAPPING = Path(__file__).parent / "data" / "upstream-2.1.2" / "anon_mapping.csv"

MANUAL_EXAMPLE = """\
## Description ##
Mapping created February 12 2020

## Options ##
root_source_path, \\\\server\\share2\\data
project,          Wetenschap-Algemeen
destination_path, \\\\server\\share\\folder

## Mapping ##
source,           patient_id, patient_name, description
folder:example/folder1, 001,      Patient1,      All files from folder1
study_instance_uid:123.12178, 002,      Patient2,      A StudyInstanceUID from PACS
accession_number:12345678.1234567, 003,      Patient3,      An AccessionNumber from PACS
fileselection:a/fileselection.txt, 004,      Patient4,      A selection of files in a
"""


def write_mapping(path: Path, text: str, delimiter: str = ",", encoding: str = "utf-8", bom: bool = False) -> MappingFile:
    """Write ``text`` with ``,`` replaced by ``delimiter``, Windows line ends, in ``encoding``."""
    data = text.replace(",", delimiter).replace("\n", "\r\n").encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return MappingFile(path)


# --- source identifiers ---


@pytest.mark.parametrize(
    "text, expected",
    [
        ("folder:mydata/experiment1", FolderIdentifier("mydata/experiment1")),
        ("fileselection:mydata/patient1/fileselection.txt", FileSelectionIdentifier("mydata/patient1/fileselection.txt")),
        ("study_instance_uid:123.1217.23234.2323", StudyInstanceUIDIdentifier("123.1217.23234.2323")),
        ("accession_number:12345678.1234567", AccessionNumberIdentifier("12345678.1234567")),
        (" Folder: a\\b ", FolderIdentifier("a/b")),
    ],
)
def test_parse_source_identifier(text, expected):
    assert parse_source_identifier(text) == expected


def test_source_identifier_to_string():
    assert parse_source_identifier("folder:a\\b").to_string() == "folder:a/b"


def test_unknown_source_type_lists_valid():
    with pytest.raises(MappingError, match="'folder:', 'fileselection:', 'study_instance_uid:', 'accession_number:'"):
        parse_source_identifier("path:a/b")


def test_source_without_type_rejected():
    with pytest.raises(MappingError, match="Invalid source '12345'"):
        parse_source_identifier("12345")


def test_empty_source_value_rejected():
    with pytest.raises(MappingError, match="the value after 'accession_number:' is empty"):
        parse_source_identifier("accession_number:")


def test_invalid_uid_rejected():
    with pytest.raises(MappingError, match="Invalid StudyInstanceUID '1.2.abc'"):
        parse_source_identifier("study_instance_uid:1.2.abc")


@pytest.mark.parametrize("text", ["folder:/mnt/data/p1", "fileselection:C:\\data\\fileselection.txt"])
def test_absolute_source_path_rejected(text):
    with pytest.raises(MappingError, match="must be relative to root_source_path"):
        parse_source_identifier(text)


def test_pacs_identifiers_flagged():
    assert [parse_source_identifier(text).is_pacs for text in ("folder:a", "study_instance_uid:1.2", "accession_number:1")] == [
        False,
        True,
        True,
    ]


# --- reading ---


def test_read_upstream_file():
    mapping = MappingFile(UPSTREAM_MAPPING).load()
    assert [row.source.to_string() for row in mapping.rows] == [
        "study_instance_uid:123.12121212.12345678",
        "accession_number:12345678.1234567",
        "fileselection:s/a/fileselection.txt",
    ]


def test_read_upstream_options():
    options = MappingFile(UPSTREAM_MAPPING).load().options
    assert (options.root_source_path, options.project, options.destination_path) == ("\\tmp\\uphome\\w", "NOT_SET", ".")


def test_read_upstream_quoted_description():
    row = MappingFile(UPSTREAM_MAPPING).load().rows[0]
    assert row.description == "A study which should be retrieved from PACS, identified by StudyInstanceUID"


def test_read_manual_example_old_column_names(tmp_path):
    mapping = write_mapping(tmp_path / "anon_mapping.csv", MANUAL_EXAMPLE).load()
    assert [(row.pseudo_id, row.pseudo_name) for row in mapping.rows] == [
        ("001", "Patient1"),
        ("002", "Patient2"),
        ("003", "Patient3"),
        ("004", "Patient4"),
    ]


def test_read_manual_example_spaces_stripped(tmp_path):
    mapping = write_mapping(tmp_path / "anon_mapping.csv", MANUAL_EXAMPLE).load()
    assert mapping.options.root_source_path == "\\\\server\\share2\\data"


def test_read_line_numbers(tmp_path):
    mapping = write_mapping(tmp_path / "anon_mapping.csv", MANUAL_EXAMPLE).load()
    assert [row.line_number for row in mapping.rows] == [11, 12, 13, 14]


@pytest.mark.parametrize("delimiter", [",", ";"])
@pytest.mark.parametrize("encoding, bom", [("utf-8", False), ("utf-8", True), ("cp1252", False)])
def test_read_dialects_and_encodings(tmp_path, delimiter, encoding, bom):
    text = (
        "## Description ##\nStudie van Zoë\n\n## Options ##\nproject,Wetenschap-Algemeen\n\n"
        "## Mapping ##\nsource,pseudo_name,description\nfolder:café/p1,Renée,\"met, komma\"\n"
    )
    if delimiter == ";":
        text = text.replace('"met, komma"', '"met; puntkomma"')
    mapping = write_mapping(tmp_path / "anon_mapping.csv", text, delimiter, encoding, bom).load()
    row = mapping.rows[0]
    assert mapping.description == "Studie van Zoë"
    assert (row.source.value, row.pseudo_name) == ("café/p1", "Renée")
    assert row.description == ("met, komma" if delimiter == "," else "met; puntkomma")


def test_read_excel_padding(tmp_path):
    # Excel pads every line to the widest row with separators when it saves a CSV.
    text = (
        "## Description ##;;;\nMy study;;;\n;;;\n## Options ##;;;\nroot_source_path;\\\\srv\\share;;\n"
        "project;P;;\ndestination_path;\\\\srv\\out;;\n;;;\n## Mapping ##;;;\n"
        "source;pseudo_id;pseudo_name;description\nfolder:a;1;A;\n;;;\n"
    )
    mapping = write_mapping(tmp_path / "anon_mapping.csv", text).load()
    assert (mapping.description, mapping.options.project, len(mapping.rows)) == ("My study", "P", 1)


def test_read_semicolon_single_column(tmp_path):
    text = "## Options ##\nproject;P\n## Mapping ##\nsource\naccession_number:1\n"
    mapping = write_mapping(tmp_path / "m.csv", text).load()
    assert mapping.options.project == "P"


def test_read_without_description(tmp_path):
    mapping = write_mapping(tmp_path / "m.csv", "## Mapping ##\nsource\nfolder:a\n").load()
    assert (mapping.description, mapping.rows[0].source) == ("", FolderIdentifier("a"))


def test_read_multiline_description_cell(tmp_path):
    text = '## Description ##\nfirst line\n\n## Mapping ##\nsource,description\nfolder:a,"two\nlines"\nfolder:b,x\n'
    mapping = write_mapping(tmp_path / "m.csv", text).load()
    assert [(row.description, row.line_number) for row in mapping.rows] == [("two\nlines", 6), ("x", 8)]


def test_row_values_win_over_options(tmp_path):
    text = (
        "## Options ##\nproject,P1\ndestination_path,\\\\s\\out\ndescription,default text\n"
        "## Mapping ##\nsource,project,description\nfolder:a,P2,\nfolder:b,,own text\n"
    )
    parameters = write_mapping(tmp_path / "m.csv", text).load().job_parameters()
    assert [(job.project, job.destination_path, job.description) for job in parameters] == [
        ("P2", "\\\\s\\out", "default text"),
        ("P1", "\\\\s\\out", "own text"),
    ]


def test_missing_file_says_how_to_create(tmp_path):
    with pytest.raises(MappingError, match="not found. Create one with 'anon map init'"):
        MappingFile(tmp_path / "anon_mapping.csv").load()


# --- errors name file, line, value and fix ---


@pytest.mark.parametrize(
    "text, expected",
    [
        ("## Mapping ##\nsource\npath:a\n", r"line 3: Invalid source 'path:a': it must start with one of 'folder:'"),
        ("## Mapping ##\nsource,pseudo_name\n,A\n", r"line 3: no source in ',A'. Add a source such as"),
        ("## Mapping ##\nsource,age\nfolder:a,4\n", r"line 2: unknown column 'age'. Valid columns are source, pseudo_id"),
        ("## Mapping ##\nsource,patient_id,pseudo_id\n", r"line 2: column 'pseudo_id' appears twice"),
        ("## Mapping ##\npseudo_name\nA\n", r"line 2: no 'source' column"),
        ("## Mapping ##\nsource,pseudo_name\nfolder:a,A,extra\n", r"line 3: 3 values for 2 columns .* Put quotes around values"),
        ("## Options ##\nproject,P\nserver,x\n## Mapping ##\nsource\n", r"line 3: unknown option 'server'. Valid options are"),
        ("## Options ##\npseudo_name,x\n## Mapping ##\nsource\n", r"line 2: 'pseudo_name' cannot be an option.*Move it to a column"),
        ("## Options ##\nproject,P\nproject,Q\n## Mapping ##\nsource\n", r"line 3: option 'project' is set a second time \(first on line 2\)"),
        ("## Description ##\nx\n## Extra ##\n## Mapping ##\nsource\n", r"line 3: unknown section '## Extra ##'"),
        ("hello\n## Mapping ##\nsource\n", r"line 1: 'hello' comes before any section"),
        ("## Description ##\nx\n", r"no '## Mapping ##' line found"),
        ("## Mapping ##\n\n", r"line 1: no column names below '## Mapping ##'"),
    ],
)
def test_parse_errors(text, expected, tmp_path):
    mapping_file = write_mapping(tmp_path / "anon_mapping.csv", text)
    with pytest.raises(MappingError, match=expected) as raised:
        mapping_file.load()
    assert str(mapping_file.path) in str(raised.value)


def test_parse_errors_lists_other_lines(tmp_path):
    text = "## Mapping ##\nsource\nfolder:a\nbad:1\nfolder:b\nbad:2\nbad:3\n"
    with pytest.raises(MappingError, match="line 4: .* Lines 6, 7 have problems too."):
        write_mapping(tmp_path / "m.csv", text).load()


def test_locked_mapping_read(tmp_path, monkeypatch):
    mapping_file = write_mapping(tmp_path / "m.csv", "## Mapping ##\nsource\n")

    def open_held_by_excel(*args, **kwargs):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr("anonapi.inputfile.open", open_held_by_excel, raising=False)
    with pytest.raises(FileLockedError, match="close it in the other program and try again"):
        mapping_file.load()


def test_locked_mapping_write(tmp_path, monkeypatch):
    def replace_held_by_excel(source, target):
        raise PermissionError(13, "Access is denied")

    monkeypatch.setattr(anonapi.fileio.os, "replace", replace_held_by_excel)
    with pytest.raises(FileLockedError, match="Close it in the other program and try again"):
        MappingFile(tmp_path / "m.csv").save(Mapping())


# --- writing ---


def example_mapping() -> Mapping:
    return Mapping(
        description="Mapping created 2024-02-12 by z123456",
        options=MappingOptions(root_source_path="\\\\server\\share\\data", project="Wetenschap-Algemeen", destination_path="\\\\server\\out"),
        rows=[
            MappingRow(source=FolderIdentifier("patient1/study"), pseudo_id="001", pseudo_name="Patient1", description="first, with comma"),
            MappingRow(source=AccessionNumberIdentifier("12345678.1234567"), pseudo_name="Patient2"),
        ],
    )


def test_format_comma_dialect():
    assert format_mapping(example_mapping(), ",") == (
        "## Description ##\r\n"
        "Mapping created 2024-02-12 by z123456\r\n"
        "\r\n"
        "## Options ##\r\n"
        "root_source_path,\\\\server\\share\\data\r\n"
        "project,Wetenschap-Algemeen\r\n"
        "destination_path,\\\\server\\out\r\n"
        "\r\n"
        "## Mapping ##\r\n"
        "source,pseudo_id,pseudo_name,description\r\n"
        'folder:patient1/study,001,Patient1,"first, with comma"\r\n'
        "accession_number:12345678.1234567,,Patient2,\r\n"
    )


def test_format_semicolon_dialect():
    lines = format_mapping(example_mapping(), ";").splitlines()
    assert lines[9:11] == ["source;pseudo_id;pseudo_name;description", "folder:patient1/study;001;Patient1;first, with comma"]


def test_format_override_columns():
    mapping = example_mapping()
    mapping.rows[1].project = "Other"
    assert format_mapping(mapping).splitlines()[9] == "source,pseudo_id,pseudo_name,description,project"


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_save_load_round_trip(tmp_path, delimiter):
    mapping_file = MappingFile(tmp_path / "anon_mapping.csv")
    original = example_mapping()
    original.rows[0].pims_key = "42"
    mapping_file.save(original, delimiter=delimiter)
    loaded = mapping_file.load()
    for row in loaded.rows:
        row.line_number = 0
    assert loaded == original


def test_save_ascii_without_bom(tmp_path):
    MappingFile(tmp_path / "m.csv").save(example_mapping(), ",")
    assert (tmp_path / "m.csv").read_bytes().startswith(b"## Description ##")


def test_save_non_ascii_with_bom(tmp_path):
    mapping = example_mapping()
    mapping.rows[0].pseudo_name = "Zoë"
    MappingFile(tmp_path / "m.csv").save(mapping, ",")
    assert (tmp_path / "m.csv").read_bytes().startswith(b"\xef\xbb\xbf## Description ##")


def test_save_uses_locale_delimiter(tmp_path, monkeypatch):
    monkeypatch.setattr(locale, "localeconv", lambda: {"decimal_point": ","})
    MappingFile(tmp_path / "m.csv").save(example_mapping())
    assert "root_source_path;\\\\server" in (tmp_path / "m.csv").read_text()


def test_local_csv_delimiter_comma_decimal(monkeypatch):
    monkeypatch.setattr(locale, "localeconv", lambda: {"decimal_point": ","})
    assert local_csv_delimiter() == ";"


def test_local_csv_delimiter_point_decimal(monkeypatch):
    monkeypatch.setattr(locale, "localeconv", lambda: {"decimal_point": "."})
    assert local_csv_delimiter() == ","


def test_local_csv_delimiter_restores_locale(monkeypatch):
    before = locale.setlocale(locale.LC_NUMERIC)
    local_csv_delimiter()
    assert locale.setlocale(locale.LC_NUMERIC) == before


def test_save_leaves_no_temporary_files(tmp_path):
    MappingFile(tmp_path / "m.csv").save(example_mapping())
    assert [path.name for path in tmp_path.iterdir()] == ["m.csv"]


# --- building mappings ---


def test_default_mapping_description():
    mapping = create_default_mapping(project="P", destination_path=".", user_name="z1", today=datetime.date(2024, 2, 12))
    assert mapping.description == "Mapping created 2024-02-12 by z1"


def test_default_mapping_has_no_rows():
    assert create_default_mapping(project="P").rows == []


def test_generate_pseudonym_form():
    pseudonym = generate_pseudonym(set())
    assert len(pseudonym) == 8
    assert pseudonym.isalnum()
    assert pseudonym == pseudonym.upper()


def test_generate_pseudonym_avoids_used(monkeypatch):
    choices = iter("AAAAAAAA" + "BBBBBBBB")
    monkeypatch.setattr("anonapi.mapper.secrets.choice", lambda alphabet: next(choices))
    assert generate_pseudonym({"aaaaaaaa"}) == "BBBBBBBB"


def test_add_row_generates_unique_pseudonyms():
    mapping = Mapping()
    for number in range(200):
        mapping.add_row(AccessionNumberIdentifier(str(number)))
    assert len(mapping.used_pseudonyms()) == 200


def test_add_row_sets_id_and_name():
    row = Mapping().add_row(FolderIdentifier("a"), pseudonym="anon1")
    assert (row.pseudo_id, row.pseudo_name) == ("anon1", "anon1")


def test_add_row_existing_source_kept():
    mapping = Mapping()
    first = mapping.add_row(FolderIdentifier("a"), pseudonym="anon1")
    assert mapping.add_row(FolderIdentifier("a"), pseudonym="anon2") is first


def test_add_row_pseudonym_taken():
    mapping = Mapping()
    mapping.add_row(FolderIdentifier("a"), pseudonym="anon1")
    with pytest.raises(MappingError, match="Pseudonym 'anon1' for folder:b is already used for folder:a"):
        mapping.add_row(FolderIdentifier("b"), pseudonym="anon1")


def test_check_new_pseudonyms_within_batch():
    with pytest.raises(MappingError, match="Pseudonym 'X' for folder:b is already used for folder:a"):
        check_new_pseudonyms(Mapping(), [(FolderIdentifier("a"), "X"), (FolderIdentifier("b"), "X")])


# --- files as Excel and editors save them ---


def test_read_quoted_value_after_space(tmp_path):
    text = '## Mapping ##\nsource; pseudo_id; description\nfolder:a; 001; "first; with separator"\n'
    rows = write_mapping(tmp_path / "m.csv", text).load().rows
    assert rows[0].description == "first; with separator"


def test_parse_errors_one_other_line(tmp_path):
    text = "## Mapping ##\nsource\nbad:1\nbad:2\n"
    with pytest.raises(MappingError, match="line 3: .* Line 4 has problems too.$"):
        write_mapping(tmp_path / "m.csv", text).load()


def test_read_excel_unicode_text(tmp_path):
    # Excel's "Unicode text" format: UTF-16 with byte order mark, separated by tabs.
    text = "## Options ##\r\nproject\tWetenschap\r\n## Mapping ##\r\nsource\tpseudo_id\tdescription\r\nfolder:a\t001\tZoë\r\n"
    path = tmp_path / "anon_mapping.csv"
    path.write_bytes(text.encode("utf-16"))
    mapping = MappingFile(path).load()
    assert mapping.options.project == "Wetenschap"
    assert (mapping.rows[0].pseudo_id, mapping.rows[0].description) == ("001", "Zoë")


@pytest.mark.parametrize("start", [b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"])
def test_workbook_saved_as_mapping(tmp_path, start):
    path = tmp_path / "anon_mapping.csv"
    path.write_bytes(start + b"\x00" * 200)
    with pytest.raises(MappingError, match="it is a spreadsheet workbook, not text. Open it in Excel and save it as CSV"):
        MappingFile(path).load()


def test_binary_file_as_mapping(tmp_path):
    path = tmp_path / "anon_mapping.csv"
    path.write_bytes(b"## Mapping ##\x00\x01\x02")
    with pytest.raises(MappingError, match="it is not a text file"):
        MappingFile(path).load()


def test_delete_held_open(tmp_path, monkeypatch):
    mapping_file = write_mapping(tmp_path / "m.csv", "## Mapping ##\nsource\n")

    def unlink_held_by_excel(self, missing_ok=False):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(Path, "unlink", unlink_held_by_excel)
    with pytest.raises(FileLockedError, match="Cannot delete .* close it in the other program and try again"):
        mapping_file.delete()
