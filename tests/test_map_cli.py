"""The ``anon map`` commands, run in-process with the settings and working folder in tmp_path."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from pydicom.data import get_testdata_file

from anonapi.cli.main import cli
from anonapi.mapper import MappingFile
from anonapi.selection import FileSelectionFile
from anonapi.settings import SettingsFile, default_settings_path


def run_anon(*arguments: str, input: str = None):  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(cli, list(arguments), input=input, catch_exceptions=False)


def copy_test_file(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(get_testdata_file(name), target)
    return target


def update_settings(**values) -> None:
    settings_file = SettingsFile(default_settings_path())
    settings = settings_file.load()
    for name, value in values.items():
        setattr(settings, name, value)
    settings_file.save(settings)


def load_settings():
    return SettingsFile(default_settings_path()).load()


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The current folder, with a data folder of two patients and one folder without DICOM."""
    copy_test_file("CT_small.dcm", tmp_path / "data" / "patient1" / "study" / "1.dcm")
    (tmp_path / "data" / "patient1" / "study" / "notes.txt").write_text("notes")
    copy_test_file("MR_small.dcm", tmp_path / "data" / "patient2" / "study" / "IM1")
    (tmp_path / "data" / "patient3" / "study").mkdir(parents=True)
    (tmp_path / "data" / "patient3" / "study" / "a.txt").write_text("text")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def initialized(project) -> Path:
    """A project whose data folder is known as \\\\localhost\\share, with an active mapping."""
    update_settings(unc_paths={str(project / "data"): "\\\\localhost\\share"})
    result = run_anon("map", "init")
    assert result.exit_code == 0, result.output
    return project


@pytest.fixture
def in_data(initialized, monkeypatch) -> Path:
    """The mapping of ``initialized``, with the data folder as current folder, as in the tutorial."""
    monkeypatch.chdir(initialized / "data")
    return initialized


def rows(project: Path) -> list:
    return [(row.source.to_string(), row.pseudo_name) for row in MappingFile(project / "anon_mapping.csv").load().rows]


# --- init, activate, status, edit, delete ---


def test_init_uses_job_defaults(project):
    from anonapi.settings import JobDefaults

    update_settings(job_defaults=JobDefaults(project_name="Wetenschap-Algemeen", destination_path="\\\\srv\\out"))
    run_anon("map", "init")
    options = MappingFile(project / "anon_mapping.csv").load().options
    assert (options.project, options.destination_path) == ("Wetenschap-Algemeen", "\\\\srv\\out")


def test_init_activates(project):
    result = run_anon("map", "init")
    assert f"Created mapping '{project / 'anon_mapping.csv'}' and made it the active mapping." in result.stdout
    assert load_settings().active_mapping_file == project / "anon_mapping.csv"


def test_init_local_folder_leaves_root_empty(project):
    result = run_anon("map", "init")
    assert "root_source_path is empty" in result.stdout
    assert MappingFile(project / "anon_mapping.csv").load().options.root_source_path is None


def test_init_on_share_sets_unc_root(project, monkeypatch):
    update_settings(unc_paths={str(project): "\\\\localhost\\share\\project"})
    run_anon("map", "init")
    assert MappingFile(project / "anon_mapping.csv").load().options.root_source_path == "\\\\localhost\\share\\project"


def test_init_asks_before_overwrite(initialized):
    run_anon("map", "add-accession-numbers", "1")
    result = run_anon("map", "init", input="n\n")
    assert result.exit_code == 1
    assert "Overwrite it?" in result.output
    assert len(rows(initialized)) == 1


def test_init_yes_overwrites(initialized):
    run_anon("map", "add-accession-numbers", "1")
    result = run_anon("map", "init", "--yes")
    assert result.exit_code == 0
    assert rows(initialized) == []


def test_activate_folder(initialized, tmp_path):
    other = initialized / "other"
    other.mkdir()
    (other / "anon_mapping.csv").write_text("## Mapping ##\nsource\n")
    result = run_anon("map", "activate", "other")
    assert result.exit_code == 0
    assert load_settings().active_mapping_file == other / "anon_mapping.csv"


def test_activate_invalid_mapping(initialized):
    (initialized / "bad.csv").write_text("## Mapping ##\nsource\nwrong:1\n")
    result = run_anon("map", "activate", "bad.csv")
    assert result.exit_code == 1
    assert "line 3: Invalid source 'wrong:1'" in result.stderr
    assert load_settings().active_mapping_file == initialized / "anon_mapping.csv"


def test_no_active_mapping(project):
    result = run_anon("map", "status")
    assert result.exit_code == 1
    assert "Error: No active mapping. Create one in the project folder with 'anon map init'." in result.stderr


def test_no_active_mapping_but_local_one(project):
    (project / "anon_mapping.csv").write_text("## Mapping ##\nsource\n")
    result = run_anon("map", "status")
    assert "Run 'anon map activate' to use" in result.stderr


def test_active_mapping_gone(initialized):
    (initialized / "anon_mapping.csv").unlink()
    result = run_anon("map", "status")
    assert "not found. Create a new one with 'anon map init'" in result.stderr


def test_status_shows_options_and_rows(initialized):
    run_anon("map", "add-accession-numbers", "123.45")
    output = run_anon("map", "status").stdout
    assert "project           NOT_SET" in output
    assert "1 rows" in output
    assert "accession_number:123.45" in output


def test_status_limits_rows(initialized):
    run_anon("map", "add-accession-numbers", *[str(number) for number in range(25)])
    assert "... and 5 more rows." in run_anon("map", "status").stdout


def test_edit_checks_after_editor(initialized, monkeypatch, tmp_path):
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('accession_number:77,,anon77,\\n')\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    result = run_anon("map", "edit")
    assert "is valid and has 1 rows" in result.stdout


def test_edit_reports_invalid_result(initialized, monkeypatch, tmp_path):
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('accesion_number:77\\n')\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    result = run_anon("map", "edit")
    assert result.exit_code == 1
    assert "Invalid source 'accesion_number:77'" in result.stderr


def test_edit_launches_system_program(initialized, monkeypatch):
    launched = []
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setattr("click.launch", lambda path, *args, **kwargs: launched.append(path))
    run_anon("map", "edit")
    assert launched == [str(initialized / "anon_mapping.csv")]


def test_delete_yes(initialized):
    result = run_anon("map", "delete", "--yes")
    assert result.exit_code == 0
    assert not (initialized / "anon_mapping.csv").exists()
    assert load_settings().active_mapping_file is None


def test_delete_asks(initialized):
    run_anon("map", "delete", input="n\n")
    assert (initialized / "anon_mapping.csv").exists()


# --- add-study-folders ---


def test_add_study_folders_wildcard(in_data):
    result = run_anon("map", "add-study-folders", "patient[12]/study")
    assert result.exit_code == 0, result.output
    assert [source for source, _ in rows(in_data)] == [
        "fileselection:patient1/study/fileselection.txt",
        "fileselection:patient2/study/fileselection.txt",
    ]


def test_add_study_folders_sets_root(in_data):
    result = run_anon("map", "add-study-folders", "patient1/study")
    assert "Set root_source_path to '\\\\localhost\\share'." in result.stdout
    assert "not a UNC path" not in result.stdout
    assert MappingFile(in_data / "anon_mapping.csv").load().options.root_source_path == "\\\\localhost\\share"


def test_add_study_folders_output(in_data):
    output = run_anon("map", "add-study-folders", "patient1/study").stdout
    assert "patient1/study: 1 DICOM file, added as fileselection:patient1/study/fileselection.txt" in output
    assert "Added 1 folder to the mapping." in output


def test_add_study_folders_selection_file(in_data):
    run_anon("map", "add-study-folders", "patient1/study")
    selection = FileSelectionFile(in_data / "data" / "patient1" / "study" / "fileselection.txt").load()
    assert selection.selected_paths == ["1.dcm"]


def test_add_study_folders_without_dicom(in_data):
    result = run_anon("map", "add-study-folders", "*/study")
    assert result.exit_code == 1
    assert "patient3/study: 1 file, none of them DICOM. Not added." in result.stdout
    assert "Error: 1 folders contain no DICOM files and were not added: patient3/study." in result.stderr
    assert len(rows(in_data)) == 2


def test_add_study_folders_double_star(in_data):
    copy_test_file("CT_small.dcm", in_data / "data" / "patient2" / "raw" / "x.dcm")
    copy_test_file("CT_small.dcm", in_data / "data" / "raw" / "y.dcm")
    run_anon("map", "add-study-folders", "**/raw")
    assert [source for source, _ in rows(in_data)] == [
        "fileselection:patient2/raw/fileselection.txt",
        "fileselection:raw/fileselection.txt",
    ]


def test_add_study_folders_input_file(in_data):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["List of folders for the study"])
    sheet.append([])
    sheet.append(["Folder", "Pseudonym", "comment"])
    sheet.append(["patient1/study", "anon_patientA", "first"])
    sheet.append(["patient2/study", "anon_patientB", None])
    workbook.save(in_data / "data" / "folders.xlsx")
    result = run_anon("map", "add-study-folders", "--input-file", "folders.xlsx")
    assert result.exit_code == 0, result.output
    assert rows(in_data) == [
        ("fileselection:patient1/study/fileselection.txt", "anon_patientA"),
        ("fileselection:patient2/study/fileselection.txt", "anon_patientB"),
    ]


def test_add_study_folders_input_file_missing_folder(in_data):
    (in_data / "data" / "folders.csv").write_text("folder;pseudonym\npatient1/study;A\npatient9;B\n")
    result = run_anon("map", "add-study-folders", "-f", "folders.csv")
    assert result.exit_code == 1
    assert "Folder 'patient9' not found" in result.stderr
    assert "(input file 'folders.csv', row 3)" in result.stderr


def test_add_study_folders_input_file_partial_row(in_data):
    (in_data / "data" / "folders.csv").write_text("folder,pseudonym\npatient1/study,A\npatient2/study,\n")
    result = run_anon("map", "add-study-folders", "-f", "folders.csv")
    assert "line 3: folder 'patient2/study' is given but the pseudonym is empty" in result.stderr
    assert rows(in_data) == []


def test_add_study_folders_no_paths(in_data):
    result = run_anon("map", "add-study-folders")
    assert "No folders given." in result.stderr


def test_add_study_folders_no_check_dicom(in_data):
    run_anon("map", "add-study-folders", "--no-check-dicom", "patient2/study")
    selection = FileSelectionFile(in_data / "data" / "patient2" / "study" / "fileselection.txt").load()
    assert selection.selected_paths == ["IM1"]


def test_add_study_folders_outside_root(in_data, tmp_path):
    mapping_file = MappingFile(in_data / "anon_mapping.csv")
    mapping = mapping_file.load()
    mapping.options.root_source_path = "\\\\localhost\\share\\patient2"
    mapping_file.save(mapping)
    result = run_anon("map", "add-study-folders", "patient1/study")
    assert "is not below root_source_path" in result.stderr


# --- add-accession-numbers and add-selection ---


def test_add_accession_numbers_arguments(initialized):
    result = run_anon("map", "add-accession-numbers", "1234567.12345673", "1111112.12345673")
    assert "Added 2 accession numbers" in result.stdout
    assert [source for source, _ in rows(initialized)] == [
        "accession_number:1234567.12345673",
        "accession_number:1111112.12345673",
    ]


def test_add_accession_numbers_unique_pseudonyms(initialized):
    run_anon("map", "add-accession-numbers", *[str(number) for number in range(50)])
    pseudonyms = [pseudonym for _, pseudonym in rows(initialized)]
    assert len(set(pseudonyms)) == 50


def test_add_accession_numbers_input_file(initialized):
    lines = [
        "Some text here does not matter",
        "The column 'project' below will also just be ignored",
        "",
        "accession_number;pseudonym;project",
        "1234567.12345678;studyA;some_projectA",
        "2234567.12345678;studyB;some_projectB",
    ]
    (initialized / "accession_numbers.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    result = run_anon("map", "add-accession-numbers", "--input-file", "accession_numbers.csv")
    assert result.exit_code == 0, result.output
    assert rows(initialized) == [
        ("accession_number:1234567.12345678", "studyA"),
        ("accession_number:2234567.12345678", "studyB"),
    ]


def test_add_accession_numbers_skips_present(initialized):
    run_anon("map", "add-accession-numbers", "1")
    result = run_anon("map", "add-accession-numbers", "1")
    assert "Skipped accession_number:1: the mapping has it already" in result.stdout


def test_add_accession_numbers_warns_on_other_pseudonym(initialized):
    run_anon("map", "add-accession-numbers", "1")
    (kept,) = [pseudonym for source, pseudonym in rows(initialized) if source == "accession_number:1"]
    (initialized / "numbers.csv").write_text("accession number,pseudonym\n1,studyX\n")

    result = run_anon("map", "add-accession-numbers", "--input-file", "numbers.csv")

    assert result.exit_code == 0
    assert f"keeps its pseudonym '{kept}' from the mapping, not 'studyX'" in result.stderr
    assert rows(initialized) == [("accession_number:1", kept)]


def test_add_study_folders_warns_on_other_pseudonym(in_data):
    run_anon("map", "add-study-folders", "patient1/study")
    (kept,) = [pseudonym for _, pseudonym in rows(in_data)]
    (in_data / "data" / "folders.csv").write_text("folder,pseudonym\npatient1/study,anon_patientA\n")

    result = run_anon("map", "add-study-folders", "--input-file", "folders.csv")

    assert result.exit_code == 0
    assert f"keeps its pseudonym '{kept}' from the mapping, not 'anon_patientA'" in result.stderr


def test_add_accession_numbers_none_given(initialized):
    assert "No accession numbers given." in run_anon("map", "add-accession-numbers").stderr


def test_add_selection(in_data):
    run_anon("map", "add-study-folders", "patient1/study")
    (in_data / "data" / "patient2" / "fileselection.txt").write_text("selected_paths:\n- study/IM1\n")
    result = run_anon("map", "add-selection", "patient2/fileselection.txt")
    assert result.exit_code == 0, result.output
    assert rows(in_data)[1][0] == "fileselection:patient2/fileselection.txt"


def test_add_selection_from_project_folder(initialized):
    (initialized / "data" / "patient2" / "fileselection.txt").write_text("selected_paths:\n- study/IM1\n")
    result = run_anon("map", "add-selection", "data/patient2")
    assert "Set root_source_path to '" + str(initialized) + "'." in result.stdout
    assert "This is not a UNC path, which jobs need." in result.stdout
    assert [source for source, _ in rows(initialized)] == ["fileselection:data/patient2/fileselection.txt"]


def test_add_selection_missing(initialized):
    result = run_anon("map", "add-selection", "data/patient2")
    assert result.exit_code == 1
    assert "not found. Create one with 'anon select add'" in result.stderr


def test_map_help_lists_commands():
    output = run_anon("map", "--help").stdout
    for command in ("activate", "add-accession-numbers", "add-selection", "add-study-folders", "delete", "edit", "init", "status"):
        assert command in output


# --- input files and paths as Windows users write them ---


def test_add_study_folders_input_file_backslashes(in_data):
    lines = ["folder;pseudonym", "patient1\\study;Zoë", "patient2\\study\\;P2", ";", ""]
    (in_data / "data" / "folders.csv").write_bytes("\r\n".join(lines).encode("cp1252"))
    result = run_anon("map", "add-study-folders", "--input-file", "folders.csv")
    assert result.exit_code == 0, result.stderr
    assert rows(in_data) == [
        ("fileselection:patient1/study/fileselection.txt", "Zoë"),
        ("fileselection:patient2/study/fileselection.txt", "P2"),
    ]


def test_add_study_folders_backslash_argument(in_data):
    result = run_anon("map", "add-study-folders", "patient*\\study")
    assert result.exit_code == 1  # patient3/study has no DICOM files
    assert [source for source, _ in rows(in_data)] == [
        "fileselection:patient1/study/fileselection.txt",
        "fileselection:patient2/study/fileselection.txt",
    ]


def test_add_study_folders_input_file_unc_paths(in_data):
    lines = ["folder,pseudonym", "\\\\localhost\\share\\patient2\\study,P2"]
    (in_data / "data" / "folders.csv").write_text("\r\n".join(lines))
    result = run_anon("map", "add-study-folders", "-f", "folders.csv")
    assert result.exit_code == 0, result.stderr
    assert rows(in_data) == [("fileselection:patient2/study/fileselection.txt", "P2")]


def test_add_study_folders_empty_argument(in_data):
    result = run_anon("map", "add-study-folders", "")
    assert result.exit_code == 1
    assert "the path is empty" in result.stderr
    assert rows(in_data) == []


def test_add_study_folders_input_file_pseudonym_twice(in_data):
    (in_data / "data" / "folders.csv").write_text("folder,pseudonym\npatient1/study,A\npatient2/study,A\n")
    result = run_anon("map", "add-study-folders", "-f", "folders.csv")
    assert result.exit_code == 1
    assert "folders.csv', line 3: pseudonym 'A' is also used for folder 'patient1/study' on line 2" in result.stderr


def test_add_study_folders_input_file_folder_twice(in_data):
    (in_data / "data" / "folders.csv").write_text("folder,pseudonym\npatient1/study,A\npatient1\\study\\,B\n")
    result = run_anon("map", "add-study-folders", "-f", "folders.csv")
    assert result.exit_code == 1
    assert "line 3: folder 'patient1\\study\\' has pseudonym 'B', but line 2 gives it pseudonym 'A'" in result.stderr
    assert rows(in_data) == []


def test_add_study_folders_input_file_is_ods(in_data):
    (in_data / "data" / "folders.ods").write_bytes(b"PK\x03\x04")
    result = run_anon("map", "add-study-folders", "-f", "folders.ods")
    assert result.exit_code == 1
    assert "OpenDocument spreadsheets (.ods) are not supported" in result.stderr


def test_add_study_folders_cut_dicom_file(in_data):
    cut = in_data / "data" / "patient1" / "study" / "IM2"
    cut.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:142])
    result = run_anon("map", "add-study-folders", "patient1/study")
    assert result.exit_code == 0, result.stderr
    selection = FileSelectionFile(in_data / "data" / "patient1" / "study" / "fileselection.txt").load()
    assert selection.selected_paths == ["1.dcm"]


def test_add_study_folders_read_only_study_folder(in_data, monkeypatch):
    def write_denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    real_mkstemp = tempfile.mkstemp

    def mkstemp_denied_for_selections(*args, **kwargs):
        # The study folder is read-only; the mapping's folder is not.
        if kwargs.get("prefix", "").startswith(".fileselection.txt"):
            write_denied()
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_denied_for_selections)
    result = run_anon("map", "add-study-folders", "patient1/study")
    assert result.exit_code == 1
    assert "Cannot write '" in result.stderr
    assert "fileselection.txt': permission denied" in result.stderr
    assert rows(in_data) == []


# --- status and delete ---


def test_status_shows_values_as_written(initialized):
    (initialized / "anon_mapping.csv").write_text(
        "## Mapping ##\nsource,pseudo_id,pseudo_name,description\naccession_number:1.50,0012,1e5,1.50\n"
    )
    output = run_anon("map", "status").stdout
    assert "accession_number:1.50  0012         1e5            1.50" in output


def test_delete_permission_denied(initialized, monkeypatch):
    def unlink_denied(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", unlink_denied)
    result = run_anon("map", "delete", "--yes")
    assert result.exit_code == 1
    assert "Cannot delete" in result.stderr
    assert "close it in the other program and try again" in result.stderr
    assert load_settings().active_mapping_file is not None
