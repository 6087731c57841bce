"""File selections: the file format, pattern matching and the ``anon select`` commands."""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pydicom.data import get_testdata_file

import anonapi.selection
from anonapi.cli.main import cli
from anonapi.exceptions import FileLockedError, FileSelectionError, UserInputError
from anonapi.selection import FileSelectionFile, find_matching_files, glob_folders, select_files

UPSTREAM_SELECTION = Path(__file__).parent / "data" / "upstream-2.1.2" / "fileselection.txt"


def copy_test_file(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(get_testdata_file(name), target)
    return target


@pytest.fixture
def patient_folder(tmp_path) -> Path:
    """The folder of the select examples: DICOM files under odd names, a selection and a screenshot."""
    folder = tmp_path / "patient1"
    copy_test_file("CT_small.dcm", folder / "study1" / "file1.dcm")
    copy_test_file("MR_small.dcm", folder / "study1" / "bigfile.raw")
    copy_test_file("CT_small.dcm", folder / "study2" / "123.1224.5354.543.4")
    copy_test_file("no_meta.dcm", folder / "study2" / "123.1224.2534.34.2")
    (folder / "screenshots").mkdir()
    (folder / "screenshots" / "shot1.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    FileSelectionFile(folder / "fileselection.txt", description="old").save()
    return folder


def run_anon(*arguments: str, input: str = None):  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(cli, list(arguments), input=input, catch_exceptions=False)


def selected(folder: Path) -> list:
    return FileSelectionFile(folder / "fileselection.txt").load().selected_paths


# --- the file format ---


def test_load_upstream_selection():
    selection = FileSelectionFile(UPSTREAM_SELECTION).load()
    assert selection.selected_paths == ["CT_small.dcm"]


def test_load_upstream_selection_id():
    assert FileSelectionFile(UPSTREAM_SELECTION).load().id == "ad3b53ad-3e3e-4a79-93fa-d121c6ece689"


def test_save_writes_upstream_layout(tmp_path):
    selection = FileSelectionFile(tmp_path / "fileselection.txt", description="a typical file selection")
    selection.id = "bfc33f5e-d1cc-472e-aa05-31a5979d52be"
    selection.add_paths([tmp_path / "folder1" / "1.dcm", "folder4/raw/raw1.dcm"])
    selection.save()
    assert (tmp_path / "fileselection.txt").read_text() == (
        "description: a typical file selection\n"
        "id: bfc33f5e-d1cc-472e-aa05-31a5979d52be\n"
        "selected_paths:\n"
        "- folder1/1.dcm\n"
        "- folder4/raw/raw1.dcm\n"
    )


def test_save_load_round_trip(tmp_path):
    original = FileSelectionFile(tmp_path / "s.txt", description="Zoë's study", selected_paths=["a/b.dcm", "c"])
    original.save()
    loaded = FileSelectionFile(tmp_path / "s.txt").load()
    assert (loaded.description, loaded.id, loaded.selected_paths) == (original.description, original.id, original.selected_paths)


def test_new_selection_gets_uuid(tmp_path):
    assert uuid.UUID(FileSelectionFile(tmp_path / "s.txt").id)


def test_add_paths_skips_duplicates(tmp_path):
    selection = FileSelectionFile(tmp_path / "s.txt")
    assert selection.add_paths(["a.dcm", tmp_path / "a.dcm", "./a.dcm", "b.dcm"]) == 2


def test_backslash_paths_read(tmp_path):
    (tmp_path / "s.txt").write_text("description: x\nselected_paths:\n- study1\\file1.dcm\n")
    assert FileSelectionFile(tmp_path / "s.txt").load().selected_paths == ["study1/file1.dcm"]


def test_absolute_paths(tmp_path):
    selection = FileSelectionFile(tmp_path / "s.txt", selected_paths=["a/b.dcm"])
    assert selection.absolute_paths() == [tmp_path / "a" / "b.dcm"]


@pytest.mark.parametrize("path", ["../other/file.dcm", "a/../../file.dcm", "/etc/passwd"])
def test_path_outside_folder_rejected(path, tmp_path):
    with pytest.raises(FileSelectionError, match="must lie in .* or below it"):
        FileSelectionFile(tmp_path / "s.txt", selected_paths=[path])


def test_outside_path_in_file_names_entry(tmp_path):
    (tmp_path / "s.txt").write_text("selected_paths:\n- a.dcm\n- ../b.dcm\n")
    with pytest.raises(FileSelectionError, match=r"'\.\./b\.dcm' .* \(entry 2 of selected_paths\)"):
        FileSelectionFile(tmp_path / "s.txt").load()


def test_invalid_yaml_names_line(tmp_path):
    (tmp_path / "s.txt").write_text("description: x\nselected_paths:\n- a\n  - b: [\n")
    with pytest.raises(FileSelectionError, match="line 4: not valid YAML"):
        FileSelectionFile(tmp_path / "s.txt").load()


def test_invalid_id_rejected(tmp_path):
    (tmp_path / "s.txt").write_text("id: not-a-uuid\nselected_paths: []\n")
    with pytest.raises(FileSelectionError, match="id 'not-a-uuid' is not a UUID"):
        FileSelectionFile(tmp_path / "s.txt").load()


def test_paths_not_a_list_rejected(tmp_path):
    (tmp_path / "s.txt").write_text("selected_paths: a.dcm\n")
    with pytest.raises(FileSelectionError, match="selected_paths must be a list"):
        FileSelectionFile(tmp_path / "s.txt").load()


def test_missing_file(tmp_path):
    with pytest.raises(FileSelectionError, match="not found. Create one with 'anon select add'"):
        FileSelectionFile(tmp_path / "fileselection.txt").load()


# --- patterns ---


@pytest.mark.parametrize(
    "patterns, excludes, expected",
    [
        (["*"], [], ["screenshots/shot1.jpg", "study1/bigfile.raw", "study1/file1.dcm", "study2/123.1224.2534.34.2", "study2/123.1224.5354.543.4"]),
        (["study2/*"], [], ["study2/123.1224.2534.34.2", "study2/123.1224.5354.543.4"]),
        (["*.dcm"], [], ["study1/file1.dcm"]),
        (["*"], ["*.raw", "*.dcm", "*.jpg"], ["study2/123.1224.2534.34.2", "study2/123.1224.5354.543.4"]),
        (["study1"], [], ["study1/bigfile.raw", "study1/file1.dcm"]),
        (["study1/file1.dcm"], [], ["study1/file1.dcm"]),
        (["*"], ["study2/*", "screenshots/*"], ["study1/bigfile.raw", "study1/file1.dcm"]),
        (["study*/*.raw"], [], ["study1/bigfile.raw"]),
    ],
)
def test_find_matching_files(patient_folder, patterns, excludes, expected):
    found = find_matching_files(patient_folder, patterns, recurse=True, exclude_patterns=excludes)
    assert [path.relative_to(patient_folder).as_posix() for path in found] == expected


def test_find_matching_files_backslash_exclude(patient_folder):
    found = find_matching_files(patient_folder, ["*"], exclude_patterns=["study2\\*", "screenshots\\*"])
    assert [path.relative_to(patient_folder).as_posix() for path in found] == ["study1/bigfile.raw", "study1/file1.dcm"]


def test_find_matching_files_no_recurse(patient_folder):
    (patient_folder / "top.dcm").write_text("x")
    found = find_matching_files(patient_folder, ["*"], recurse=False)
    assert [path.name for path in found] == ["top.dcm"]


def test_find_matching_files_outside_rejected(patient_folder):
    with pytest.raises(UserInputError, match="points outside the current folder"):
        find_matching_files(patient_folder / "study1", ["../study2/*"])


def test_select_files_check_dicom(patient_folder):
    result = select_files(patient_folder, ["*"], check_dicom=True)
    assert selected(patient_folder) == [
        "study1/bigfile.raw",
        "study1/file1.dcm",
        "study2/123.1224.2534.34.2",
        "study2/123.1224.5354.543.4",
    ]
    assert result.files_found == 5


def test_select_files_by_name(patient_folder):
    select_files(patient_folder, ["*"], check_dicom=False)
    assert selected(patient_folder) == ["study1/file1.dcm", "study2/123.1224.2534.34.2", "study2/123.1224.5354.543.4"]


def test_select_files_keeps_description_and_id(patient_folder):
    before = FileSelectionFile(patient_folder / "fileselection.txt").load()
    select_files(patient_folder, ["study1/*"])
    after = FileSelectionFile(patient_folder / "fileselection.txt").load()
    assert (after.description, after.id) == (before.description, before.id)


def test_select_files_adds_to_existing(patient_folder):
    select_files(patient_folder, ["study1/*"])
    result = select_files(patient_folder, ["study2/*"])
    assert (result.files_added, len(result.selection.selected_paths)) == (2, 4)


# --- the commands ---


@pytest.fixture
def in_patient_folder(patient_folder, monkeypatch) -> Path:
    monkeypatch.chdir(patient_folder)
    return patient_folder


def test_cli_add_default_checks_dicom(in_patient_folder):
    result = run_anon("select", "add", "*", "-e", "*.raw")
    assert result.exit_code == 0
    assert "Found 4 matching files, 3 DICOM. Added 3" in result.stdout
    assert selected(in_patient_folder) == ["study1/file1.dcm", "study2/123.1224.2534.34.2", "study2/123.1224.5354.543.4"]


def test_cli_add_expanded_by_shell(in_patient_folder):
    # On Linux the shell turns * into the names in the folder.
    result = run_anon("select", "add", "fileselection.txt", "screenshots", "study1", "study2")
    assert result.exit_code == 0
    assert len(selected(in_patient_folder)) == 4


def test_cli_add_no_check_dicom(in_patient_folder):
    result = run_anon("select", "add", "--no-check-dicom", "*")
    assert "3 named like DICOM" in result.stdout


def test_cli_add_no_recurse(in_patient_folder):
    result = run_anon("select", "add", "--no-recurse", "*")
    assert result.exit_code == 1
    assert "No files match '*' in" in result.stderr
    assert "(subfolders not searched)" in result.stderr


def test_cli_add_outside_folder(in_patient_folder):
    result = run_anon("select", "add", "../*")
    assert result.exit_code == 1
    assert "Error: Invalid pattern '../*': it points outside the current folder" in result.stderr


def test_cli_status(in_patient_folder):
    run_anon("select", "add", "study2/*")
    result = run_anon("select", "status")
    assert result.stdout.splitlines() == [
        f"Selection '{in_patient_folder / 'fileselection.txt'}' lists 2 files.",
        "Description: old",
        "  study2/123.1224.2534.34.2",
        "  study2/123.1224.5354.543.4",
    ]


def test_cli_status_without_selection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_anon("select", "status")
    assert result.exit_code == 1
    assert "Create one with 'anon select add PATTERN'" in result.stderr


def test_cli_delete_asks(in_patient_folder):
    result = run_anon("select", "delete", input="n\n")
    assert result.exit_code == 1
    assert (in_patient_folder / "fileselection.txt").exists()


def test_cli_delete_yes(in_patient_folder):
    result = run_anon("select", "delete", "--yes")
    assert result.exit_code == 0
    assert not (in_patient_folder / "fileselection.txt").exists()


def test_cli_edit_with_editor(in_patient_folder, monkeypatch, tmp_path):
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('- study1/file1.dcm\\n')\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    (in_patient_folder / "fileselection.txt").write_text("description: x\nselected_paths:\n")
    result = run_anon("select", "edit")
    assert result.exit_code == 0
    assert "lists 1 files" in result.stdout


def test_cli_edit_without_editor_launches(in_patient_folder, monkeypatch):
    launched = []
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setattr("click.launch", lambda path, *args, **kwargs: launched.append(path))
    run_anon("select", "edit")
    assert launched == [str(in_patient_folder / "fileselection.txt")]


def test_selection_yaml_is_plain(in_patient_folder):
    run_anon("select", "add", "study1/*")
    content = yaml.safe_load((in_patient_folder / "fileselection.txt").read_text())
    assert list(content) == ["description", "id", "selected_paths"]


# --- patterns that match nothing, links and odd folder names ---


def test_cli_add_no_match_writes_nothing(tmp_path, monkeypatch):
    copy_test_file("CT_small.dcm", tmp_path / "study" / "1.dcm")
    monkeypatch.chdir(tmp_path)
    result = run_anon("select", "add", "nothing*")
    assert result.exit_code == 1
    assert "No files match 'nothing*' in" in result.stderr
    assert not (tmp_path / "fileselection.txt").exists()


def test_cli_add_no_dicom_keeps_selection(in_patient_folder):
    before = (in_patient_folder / "fileselection.txt").read_bytes()
    result = run_anon("select", "add", "screenshots")
    assert result.exit_code == 1
    assert "None of the 1 files matching 'screenshots'" in result.stderr
    assert "--no-check-dicom" in result.stderr
    assert (in_patient_folder / "fileselection.txt").read_bytes() == before


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need extra rights on Windows")
def test_cli_add_symlink_loop(in_patient_folder):
    (in_patient_folder / "study1" / "loop").symlink_to(in_patient_folder)
    (in_patient_folder / "study1" / "loop2").symlink_to(in_patient_folder)
    result = run_anon("select", "add", "**/*.dcm")
    assert result.exit_code == 0, result.output
    assert selected(in_patient_folder) == ["study1/file1.dcm"]


def test_find_matching_files_in_bracket_folder(tmp_path):
    folder = tmp_path / "scan [1]"
    copy_test_file("CT_small.dcm", folder / "1.dcm")
    assert find_matching_files(folder, ["*"]) == [folder / "1.dcm"]


def test_find_matching_files_bracket_folder_pattern(tmp_path):
    copy_test_file("CT_small.dcm", tmp_path / "scan [1]" / "1.dcm")
    assert find_matching_files(tmp_path, ["scan [1]/*"]) == [tmp_path / "scan [1]" / "1.dcm"]


# --- glob_folders ---


@pytest.fixture
def folder_tree(tmp_path) -> Path:
    for folder in ("a/b/raw", "a/.hidden/raw", "c/raw"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def relative_folders(folders, base: Path) -> list:
    return [Path(folder).relative_to(base).as_posix() for folder in folders]


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("**/raw", ["a/b/raw", "c/raw"]),
        ("*", ["a", "c"]),
        ("a/**", ["a", "a/b", "a/b/raw"]),
        ("a/.*", ["a/.hidden"]),
        ("nothing/*", []),
    ],
)
def test_glob_folders(folder_tree, pattern, expected):
    assert relative_folders(glob_folders(pattern, base_folder=folder_tree), folder_tree) == expected


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need extra rights on Windows")
def test_glob_folders_symlink_loop(folder_tree):
    # Two links to a folder above them would make glob.glob('**') visit 2**40 paths.
    (folder_tree / "a" / "b" / "up1").symlink_to(folder_tree)
    (folder_tree / "a" / "b" / "up2").symlink_to(folder_tree)
    assert relative_folders(glob_folders("**/raw", base_folder=folder_tree), folder_tree) == ["a/b/raw", "c/raw"]


def test_glob_folders_absolute_pattern(folder_tree):
    assert glob_folders(str(folder_tree / "*" / "raw")) == [str(folder_tree / "c" / "raw")]


# --- write errors ---


def test_save_permission_denied(tmp_path, monkeypatch):
    def write_denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # A read-only folder: the temporary file of the atomic write cannot be created.
    monkeypatch.setattr(tempfile, "mkstemp", write_denied)
    with pytest.raises(FileLockedError, match="Cannot write .*fileselection.txt': permission denied"):
        FileSelectionFile(tmp_path / "fileselection.txt").save()


def test_cli_delete_permission_denied(in_patient_folder, monkeypatch):
    def unlink_denied(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", unlink_denied)
    result = run_anon("select", "delete", "--yes")
    assert result.exit_code == 1
    assert "Cannot delete" in result.stderr
    assert "Traceback" not in result.output
