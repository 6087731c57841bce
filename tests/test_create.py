"""Tests of turning mapping rows into create_job requests, and of checking every row first.

The mappings are real files read by anonapi.mapper; folder and file
selection sources hold real DICOM files written from pydicom's test files.
No server is needed here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from anonapi.creation import (
    PACS_SOURCE_NAME,
    JobSettings,
    plan_creation,
    validate_destination_path,
    validate_project,
)
from anonapi.exceptions import InvalidMappingError, UserInputError
from anonapi.mapper import MappingFile
from anonapi.sandbox.testdata import write_study
from anonapi.selection import FileSelectionFile

SHARE_UNC = "\\\\sandbox\\share"
OUTPUT_UNC = "\\\\sandbox\\output"
PROJECT = "Wetenschap-Algemeen"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"

# Line of the first row in mappings written by write_mapping with the default options.
FIRST_ROW_LINE = 11


def write_mapping(folder: Path, rows: List[str], options: Optional[Dict[str, Optional[str]]] = None) -> Path:
    """Write a mapping with the given rows below the column names; options default to the sandbox shares."""
    values = {"root_source_path": SHARE_UNC, "project": PROJECT, "destination_path": OUTPUT_UNC}
    values.update(options or {})
    lines = ["## Description ##", "Mapping for tests", "", "## Options ##"]
    lines += [f"{name},{value}" for name, value in values.items() if value is not None]
    lines += ["", "## Mapping ##", "source,pseudo_id,pseudo_name,description"]
    lines += rows
    path = folder / "anon_mapping.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def share(tmp_path) -> Path:
    folder = tmp_path / "share"
    folder.mkdir()
    return folder


def plan(mapping_path: Path, share: Path, **arguments):
    """Plan creation for a mapping file, with the share reachable through the settings' unc_paths."""
    arguments.setdefault("unc_map", {str(share): SHARE_UNC})
    arguments.setdefault("mounts", [])
    return plan_creation(MappingFile(mapping_path).load(), mapping_path=mapping_path, **arguments)


def problems_of(mapping_path: Path, share: Path, **arguments) -> List[str]:
    with pytest.raises(InvalidMappingError) as caught:
        plan(mapping_path, share, **arguments)
    return [str(problem) for problem in caught.value.problems]


def make_selection(folder: Path, files: List[Path]) -> Path:
    selection = FileSelectionFile(folder / "fileselection.txt", description="test", selected_paths=files)
    selection.save()
    return selection.path


# --- requests ------------------------------------------------------------------------


def test_study_uid_row_sent_bare(tmp_path, share):
    mapping_path = write_mapping(tmp_path, [f"study_instance_uid:{STUDY_UID},001,PatientA,a study"])

    arguments = plan(mapping_path, share).requests[0].create_job_arguments()

    assert arguments == {
        "source_type": "WADO",
        "source_name": PACS_SOURCE_NAME,
        "source_instance_id": STUDY_UID,
        "destination_type": "PATH",
        "destination_path": OUTPUT_UNC,
        "project_name": PROJECT,
        "anonymizedpatientname": "PatientA",
        "anonymizedpatientid": "001",
        "description": "a study",
    }


def test_accession_number_keeps_prefix(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:12345678.1234567,002,PatientB,"])

    request = plan(mapping_path, share).requests[0]

    assert request.source_instance_id == "accession_number:12345678.1234567"


def test_folder_row_becomes_unc_path(tmp_path, share):
    write_study(share / "patient1" / "study", patient_id="P1")
    mapping_path = write_mapping(tmp_path, ["folder:patient1/study,001,PatientA,"])

    request = plan(mapping_path, share).requests[0]

    assert request.source_type == "PATH"
    assert request.source_path == "folder:\\\\sandbox\\share\\patient1\\study"


def test_file_selection_keeps_prefix(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    make_selection(study.folder, study.paths)
    mapping_path = write_mapping(tmp_path, ["fileselection:patient1/fileselection.txt,001,PatientA,"])

    request = plan(mapping_path, share).requests[0]

    assert request.source_path == "fileselection:\\\\sandbox\\share\\patient1\\fileselection.txt"


def test_dot_dot_inside_share_is_applied(tmp_path, share):
    write_study(share / "other", patient_id="P1")
    mapping_path = write_mapping(
        tmp_path, ["folder:../other,001,PatientA,"], {"root_source_path": "\\\\sandbox\\share\\data"}
    )
    (share / "data").mkdir()

    request = plan(mapping_path, share).requests[0]

    assert request.source_path == "folder:\\\\sandbox\\share\\other"


def test_pseudo_name_alone_sets_both(tmp_path, share):
    mapping_path = write_mapping(tmp_path, [f"study_instance_uid:{STUDY_UID},,PatientA,"])

    request = plan(mapping_path, share).requests[0]

    assert request.anon_id == "PatientA"
    assert request.anon_name == "PatientA"


def test_pims_key_replaces_pseudonyms(tmp_path, share):
    mapping_path = write_mapping(tmp_path, [f"study_instance_uid:{STUDY_UID},,,"], {"pims_key": "42"})

    arguments = plan(mapping_path, share).requests[0].create_job_arguments()

    assert arguments["pims_keyfile_id"] == "42"
    assert "anonymizedpatientid" not in arguments


def test_row_value_wins_over_option(tmp_path, share):
    mapping_path = tmp_path / "anon_mapping.csv"
    mapping_path.write_text(
        "## Description ##\n\n## Options ##\n"
        f"project,{PROJECT}\ndestination_path,{OUTPUT_UNC}\n\n## Mapping ##\n"
        "source,pseudo_name,destination_path\n"
        f"study_instance_uid:{STUDY_UID},PatientA,\\\\sandbox\\other\n"
        "accession_number:1234,PatientB,\n",
        encoding="utf-8",
    )

    requests = plan(mapping_path, share).requests

    assert requests[0].destination_path == "\\\\sandbox\\other"
    assert requests[1].destination_path == OUTPUT_UNC


def test_defaults_fill_missing_options(tmp_path, share):
    mapping_path = write_mapping(
        tmp_path, [f"study_instance_uid:{STUDY_UID},001,PatientA,"], {"project": None, "destination_path": None}
    )

    request = plan(mapping_path, share, defaults=JobSettings("Other-Project", "\\\\srv\\out")).requests[0]

    assert request.project_name == "Other-Project"
    assert request.destination_path == "\\\\srv\\out"


def test_option_description_is_default(tmp_path, share):
    mapping_path = write_mapping(
        tmp_path, [f"study_instance_uid:{STUDY_UID},001,PatientA,", "accession_number:1,002,PatientB,own"],
        {"description": "from options"},
    )

    requests = plan(mapping_path, share).requests

    assert [request.description for request in requests] == ["from options", "own"]


def test_marker_appended_to_description(tmp_path, share):
    mapping_path = write_mapping(tmp_path, [f"study_instance_uid:{STUDY_UID},001,PatientA,a study"])

    arguments = plan(mapping_path, share).requests[0].create_job_arguments(token="abc-1")

    assert arguments["description"] == "a study [anonapi:abc-1]"


def test_line_numbers_kept(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,", "accession_number:2,002,B,"])

    requests = plan(mapping_path, share).requests

    assert [request.line_number for request in requests] == [FIRST_ROW_LINE, FIRST_ROW_LINE + 1]


# --- filter ----------------------------------------------------------------------------


def test_filter_selects_by_either_pseudonym(tmp_path, share):
    mapping_path = write_mapping(
        tmp_path, ["accession_number:1,001,A,", "accession_number:2,002,B,", "accession_number:3,003,C,"]
    )

    requests = plan(mapping_path, share, pseudonym_filter=["A", "003"]).requests

    assert [request.source for request in requests] == ["accession_number:1", "accession_number:3"]


def test_filter_unknown_pseudonym_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,"])

    with pytest.raises(UserInputError, match="'Z'"):
        plan(mapping_path, share, pseudonym_filter=["A", "Z"])


# --- problems -----------------------------------------------------------------------


def test_all_problems_reported_at_once(tmp_path, share):
    (share / "empty").mkdir()
    mapping_path = write_mapping(
        tmp_path,
        [
            "folder:missing/folder,001,A,",
            "folder:empty,002,B,",
            "accession_number:3,,,",
            "accession_number:4,001,D,",
        ],
        {"project": "NOT_SET", "destination_path": "H:\\output"},
    )

    problems = problems_of(mapping_path, share)

    assert len(problems) == 6
    assert problems[0].startswith("Options: destination_path 'H:\\output' is not a UNC path")
    assert problems[1].startswith("Options: project is 'NOT_SET'")
    assert problems[2].startswith(f"line {FIRST_ROW_LINE}: 'folder:missing/folder' is not found")
    assert problems[3].startswith(f"line {FIRST_ROW_LINE + 1}: 'folder:empty' contains no files")
    assert problems[4].startswith(f"line {FIRST_ROW_LINE + 2}: 'accession_number:3' has no pseudonym")
    assert problems[5].startswith(f"line {FIRST_ROW_LINE + 3}: pseudonym '001' is also used for 'folder:missing/folder'")


def test_problem_message_names_file(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:3,,,"])

    with pytest.raises(InvalidMappingError) as caught:
        plan(mapping_path, share)

    assert str(mapping_path) in str(caught.value)


def test_missing_project_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,"], {"project": None})

    assert problems_of(mapping_path, share)[0].startswith("Options: project is missing")


def test_missing_destination_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,"], {"destination_path": None})

    assert problems_of(mapping_path, share)[0].startswith("Options: destination_path is missing")


def test_local_root_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["folder:a,001,A,"], {"root_source_path": str(share)})

    problems = problems_of(mapping_path, share, unc_map={})

    assert problems[0].startswith(f"Options: root_source_path '{share}' is not a UNC path")


def test_local_root_on_known_share_sent_as_unc(tmp_path, share):
    write_study(share / "a", patient_name="Doe^Jane", patient_id="PID-1")
    mapping_path = write_mapping(tmp_path, ["folder:a,001,A,"], {"root_source_path": str(share)})

    result = plan(mapping_path, share)

    assert result.requests[0].source_path == f"folder:{SHARE_UNC}\\a"
    assert f"root_source_path '{share}' is sent as the UNC path '{SHARE_UNC}'." in result.notices


def test_local_destination_on_known_share_sent_as_unc(tmp_path, share):
    output = tmp_path / "output"
    output.mkdir()
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,"], {"destination_path": str(output / "run1")})

    result = plan(mapping_path, share, unc_map={str(output): OUTPUT_UNC})

    assert result.requests[0].destination_path == f"{OUTPUT_UNC}\\run1"


def test_relative_destination_not_converted(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,"], {"destination_path": "."})

    problems = problems_of(mapping_path, share, unc_map={str(tmp_path): SHARE_UNC})

    assert problems[0].startswith("Options: destination_path '.' is not a UNC path")


def test_missing_root_rejected_for_share_rows(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["folder:a,001,A,"], {"root_source_path": None})

    assert problems_of(mapping_path, share)[0].startswith("Options: root_source_path is missing")


def test_missing_root_allowed_for_pacs_rows(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,"], {"root_source_path": None})

    assert len(plan(mapping_path, share).requests) == 1


def test_row_value_problem_names_row(tmp_path, share):
    mapping_path = tmp_path / "anon_mapping.csv"
    mapping_path.write_text(
        "## Description ##\n\n## Options ##\n"
        f"project,{PROJECT}\ndestination_path,{OUTPUT_UNC}\n\n## Mapping ##\n"
        "source,pseudo_name,destination_path\n"
        "accession_number:1,A,/mnt/output\n",
        encoding="utf-8",
    )

    assert problems_of(mapping_path, share) == [
        "line 9: destination_path '/mnt/output' is not a UNC path. The server writes to shares only: "
        "use the form \\\\server\\share\\folder, not a drive letter or a mount."
    ]


def test_path_leaving_share_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["folder:../../etc,001,A,"])

    assert "leaves the share" in problems_of(mapping_path, share)[0]


def test_repeated_row_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,", "accession_number:1,001,A,"])

    assert problems_of(mapping_path, share) == [
        f"line {FIRST_ROW_LINE + 1}: 'accession_number:1' repeats line {FIRST_ROW_LINE} with the same pseudonyms, "
        "which would create the same job twice. Delete one of the two rows."
    ]


def test_same_source_two_pseudonyms_allowed(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,A,", "accession_number:1,002,B,"])

    assert len(plan(mapping_path, share).requests) == 2


def test_pseudo_name_shared_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["accession_number:1,001,Same,", "accession_number:2,002,Same,"])

    assert problems_of(mapping_path, share) == [
        f"line {FIRST_ROW_LINE + 1}: pseudonym 'Same' is also used for 'accession_number:1' on line {FIRST_ROW_LINE}. "
        "Give each source its own pseudonym."
    ]


def test_folder_with_other_files_rejected(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    (study.folder / "notes.txt").write_text("not DICOM")
    mapping_path = write_mapping(tmp_path, ["folder:patient1,001,A,"])

    problem = problems_of(mapping_path, share)[0]

    assert "contains files that are not DICOM ('notes.txt')" in problem
    assert "anon map add-study-folders" in problem


def test_folder_dicom_without_extension_accepted(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    shutil.move(study.paths[0], study.folder / "1.2.3.4")
    mapping_path = write_mapping(tmp_path, ["folder:patient1,001,A,"])

    assert len(plan(mapping_path, share).requests) == 1


def test_no_check_dicom_judges_names(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    study.paths[0].write_bytes(b"not DICOM at all")
    mapping_path = write_mapping(tmp_path, ["folder:patient1,001,A,"])

    assert len(plan(mapping_path, share, check_dicom=False).requests) == 1


def test_check_dicom_reads_headers(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    study.paths[0].write_bytes(b"not DICOM at all")
    mapping_path = write_mapping(tmp_path, ["folder:patient1,001,A,"])

    assert "not DICOM ('IM0001.dcm')" in problems_of(mapping_path, share)[0]


def test_selection_missing_file_rejected(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    make_selection(study.folder, study.paths)
    study.paths[1].unlink()
    mapping_path = write_mapping(tmp_path, ["fileselection:patient1/fileselection.txt,001,A,"])

    assert "lists files that do not exist" in problems_of(mapping_path, share)[0]


def test_selection_not_dicom_rejected(tmp_path, share):
    study = write_study(share / "patient1", patient_id="P1")
    make_selection(study.folder, study.paths)
    study.paths[0].write_bytes(b"plain text")
    mapping_path = write_mapping(tmp_path, ["fileselection:patient1/fileselection.txt,001,A,"])

    assert "lists files that are not DICOM" in problems_of(mapping_path, share)[0]


def test_selection_invalid_file_rejected(tmp_path, share):
    (share / "patient1").mkdir()
    (share / "patient1" / "fileselection.txt").write_text("selected_paths: [unclosed\n")
    mapping_path = write_mapping(tmp_path, ["fileselection:patient1/fileselection.txt,001,A,"])

    assert "not valid YAML" in problems_of(mapping_path, share)[0]


def test_selection_not_found_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["fileselection:nowhere/fileselection.txt,001,A,"])

    assert "'fileselection:nowhere/fileselection.txt' is not found" in problems_of(mapping_path, share)[0]


def test_unreachable_share_noted(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["folder:anything,001,A,"], {"root_source_path": "\\\\elsewhere\\data"})

    result = plan(mapping_path, share)

    assert len(result.requests) == 1
    assert "root_source_path '\\\\elsewhere\\data' is not on a share that is mounted" in result.notices[0]


def test_missing_local_root_rejected(tmp_path, share):
    mapping_path = write_mapping(tmp_path, ["folder:a,001,A,"])

    problems = problems_of(mapping_path, share, unc_map={str(tmp_path / "gone"): SHARE_UNC})

    assert problems[0].startswith(f"Options: root_source_path '{SHARE_UNC}' is the local folder")


def test_mount_table_used(tmp_path, share):
    from anonapi.unc import ShareMount

    write_study(share / "patient1", patient_id="P1")
    mapping_path = write_mapping(tmp_path, ["folder:patient1,001,A,", "folder:patient2,002,B,"])

    problems = problems_of(mapping_path, share, unc_map={}, mounts=[ShareMount(SHARE_UNC, str(share))])

    assert len(problems) == 1
    assert "'folder:patient2' is not found" in problems[0]


# --- defaults --------------------------------------------------------------------------


def test_destination_default_normalized():
    assert validate_destination_path(" //server/share/out ") == "\\\\server\\share\\out"


def test_destination_default_must_be_unc():
    with pytest.raises(UserInputError, match="is not a UNC path"):
        validate_destination_path("/mnt/out")


def test_empty_project_rejected():
    with pytest.raises(UserInputError, match="project"):
        validate_project("  ")
