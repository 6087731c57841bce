"""Adding study folders, accession numbers and file selections to a mapping file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from anonapi.exceptions import FileSelectionError, MappingError, UserInputError
from anonapi.mapper import Mapping, MappingFile, MappingOptions
from anonapi.mapping_actions import (
    SourcePathResolver,
    add_accession_numbers,
    add_file_selection,
    add_study_folders,
    expand_folder_patterns,
)
from anonapi.parameters import AccessionNumberIdentifier, FileSelectionIdentifier
from anonapi.selection import FileSelectionFile
from anonapi.unc import ShareMount


def copy_test_file(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(get_testdata_file(name), target)
    return target


@pytest.fixture
def share(tmp_path) -> Path:
    """A data folder as on a share: three patients with DICOM and other files, one without DICOM."""
    data = tmp_path / "share" / "data"
    copy_test_file("CT_small.dcm", data / "patient1" / "study" / "1.dcm")
    copy_test_file("MR_small.dcm", data / "patient1" / "study" / "sub" / "2")
    (data / "patient1" / "study" / "notes.txt").write_text("notes")
    copy_test_file("no_meta.dcm", data / "patient2" / "study" / "IM1")
    copy_test_file("CT_small.dcm", data / "patient3" / "study1_fixed" / "a.dcm")
    copy_test_file("CT_small.dcm", data / "patient3" / "raw" / "b.dcm")
    (data / "patient4" / "study").mkdir(parents=True)
    (data / "patient4" / "study" / "readme.txt").write_text("no images")
    return data


@pytest.fixture
def mapping_file(tmp_path) -> MappingFile:
    """An empty mapping in a project folder next to the share."""
    (tmp_path / "project").mkdir()
    mapping_file = MappingFile(tmp_path / "project" / "anon_mapping.csv")
    mapping_file.save(Mapping(options=MappingOptions(project="P", destination_path="\\\\srv\\out")))
    return mapping_file


def unc_resolver(mapping_file: MappingFile, share: Path) -> SourcePathResolver:
    """A resolver on a system where ``share``'s parent is the CIFS mount of \\\\srv\\share."""
    return SourcePathResolver(mapping_file, share, mounts=[ShareMount(unc="\\\\srv\\share", local_path=str(share.parent))])


def set_root(mapping_file: MappingFile, root: str) -> None:
    mapping = mapping_file.load()
    mapping.options.root_source_path = root
    mapping_file.save(mapping)


# --- folder patterns ---


@pytest.mark.parametrize(
    "patterns, expected",
    [
        (["patient*/study"], ["patient1/study", "patient2/study", "patient4/study"]),
        (["patient3/*"], ["patient3/raw", "patient3/study1_fixed"]),
        (["**/raw"], ["patient3/raw"]),
        (["patient1/study", "patient*1/study"], ["patient1/study"]),
        (["patient2/study", "patient1/*"], ["patient2/study", "patient1/study"]),
        (["*"], ["patient1", "patient2", "patient3", "patient4"]),
    ],
)
def test_expand_folder_patterns(share, patterns, expected):
    folders = expand_folder_patterns(patterns, share)
    assert [folder.relative_to(share).as_posix() for folder in folders] == expected


def test_expand_folder_patterns_no_match(share):
    with pytest.raises(UserInputError, match="No folder matches 'x\\*'"):
        expand_folder_patterns(["x*"], share)


def test_expand_folder_patterns_missing_folder(share):
    with pytest.raises(UserInputError, match="Folder 'patient9' not found"):
        expand_folder_patterns(["patient9"], share)


def test_expand_folder_patterns_file_given(share):
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        expand_folder_patterns(["patient1/study/1.dcm"], share)


# --- paths relative to root_source_path ---


def test_resolver_sets_empty_root_to_unc(mapping_file, share):
    resolver = unc_resolver(mapping_file, share)
    mapping = mapping_file.load()
    assert resolver.ensure_root(mapping) == "\\\\srv\\share\\data"
    assert resolver.root_was_set == "\\\\srv\\share\\data"


def test_resolver_sets_empty_root_from_settings(mapping_file, share):
    resolver = SourcePathResolver(mapping_file, share, settings_unc_map={str(share.parent): "\\\\localhost\\share"}, mounts=[])
    assert resolver.ensure_root(mapping_file.load()) == "\\\\localhost\\share\\data"


def test_resolver_sets_empty_root_to_local_folder(mapping_file, share):
    resolver = SourcePathResolver(mapping_file, share, mounts=[])
    assert resolver.ensure_root(mapping_file.load()) == str(share)


def test_resolver_keeps_existing_root(mapping_file, share):
    resolver = unc_resolver(mapping_file, share)
    mapping = Mapping(options=MappingOptions(root_source_path="\\\\srv\\share"))
    resolver.ensure_root(mapping)
    assert resolver.root_was_set is None


def test_resolver_relative_in_unc_space(mapping_file, share):
    resolver = unc_resolver(mapping_file, share)
    assert resolver.relative_path(share / "patient1" / "study", "\\\\SRV\\share") == "data/patient1/study"


def test_resolver_outside_unc_root(mapping_file, share):
    resolver = unc_resolver(mapping_file, share)
    with pytest.raises(MappingError, match="is not below root_source_path '\\\\\\\\srv\\\\share\\\\other'"):
        resolver.relative_path(share / "patient1", "\\\\srv\\share\\other")


def test_resolver_unc_root_through_mount_of_root(mapping_file, share, tmp_path):
    # The folder itself is not on a known share, but the root is mounted at its parent.
    resolver = SourcePathResolver(mapping_file, share, mounts=[ShareMount(unc="\\\\srv\\data", local_path=str(share))])
    assert resolver.relative_path(share / "patient2", "\\\\srv\\data") == "patient2"


def test_resolver_unc_root_not_mounted(mapping_file, share):
    resolver = SourcePathResolver(mapping_file, share, mounts=[])
    with pytest.raises(MappingError, match="does not report where root_source_path .* unc_paths in the settings file"):
        resolver.relative_path(share / "patient1", "\\\\elsewhere\\share")


def test_resolver_local_root(mapping_file, share):
    resolver = SourcePathResolver(mapping_file, share, mounts=[])
    assert resolver.relative_path(share / "patient1" / "study", str(share)) == "patient1/study"


def test_resolver_outside_local_root(mapping_file, share, tmp_path):
    resolver = SourcePathResolver(mapping_file, share, mounts=[])
    with pytest.raises(MappingError, match="is not inside root_source_path"):
        resolver.relative_path(tmp_path, str(share))


def test_resolver_relative_root_from_mapping_folder(mapping_file, share):
    resolver = SourcePathResolver(mapping_file, share, mounts=[])
    assert resolver.relative_path(share / "patient1", "../share/data") == "patient1"


def test_resolver_upstream_backslash_root(mapping_file, share):
    # anonapi 2.1.2 writes the local folder /x/y as \x\y.
    resolver = SourcePathResolver(mapping_file, share, mounts=[])
    assert resolver.relative_path(share / "patient1", str(share).replace("/", "\\")) == "patient1"


# --- study folders ---


def test_add_study_folders_rows(mapping_file, share):
    folders = [(share / "patient1" / "study", None), (share / "patient2" / "study", "anonB")]
    results = list(add_study_folders(mapping_file, folders, unc_resolver(mapping_file, share)))
    mapping = mapping_file.load()
    assert [row.source.to_string() for row in mapping.rows] == [
        "fileselection:patient1/study/fileselection.txt",
        "fileselection:patient2/study/fileselection.txt",
    ]
    assert mapping.rows[1].pseudo_name == "anonB"
    assert [result.dicom_count for result in results] == [2, 1]


def test_add_study_folders_sets_root(mapping_file, share):
    list(add_study_folders(mapping_file, [(share / "patient1" / "study", None)], unc_resolver(mapping_file, share)))
    assert mapping_file.load().options.root_source_path == "\\\\srv\\share\\data"


def test_add_study_folders_writes_selection(mapping_file, share):
    list(add_study_folders(mapping_file, [(share / "patient1" / "study", None)], unc_resolver(mapping_file, share)))
    selection = FileSelectionFile(share / "patient1" / "study" / "fileselection.txt").load()
    assert selection.selected_paths == ["1.dcm", "sub/2"]


def test_add_study_folders_without_check(mapping_file, share):
    folders = [(share / "patient1" / "study", None)]
    list(add_study_folders(mapping_file, folders, unc_resolver(mapping_file, share), check_dicom=False))
    selection = FileSelectionFile(share / "patient1" / "study" / "fileselection.txt").load()
    assert selection.selected_paths == ["1.dcm", "sub/2"]


def test_add_study_folders_saves_after_each(mapping_file, share):
    folders = [(share / "patient1" / "study", None), (share / "patient2" / "study", None)]
    results = add_study_folders(mapping_file, folders, unc_resolver(mapping_file, share))
    next(results)
    # Stopped after the first folder, as when the user presses Ctrl+C.
    assert len(mapping_file.load().rows) == 1


def test_add_study_folders_skips_folder_without_dicom(mapping_file, share):
    results = list(add_study_folders(mapping_file, [(share / "patient4" / "study", None)], unc_resolver(mapping_file, share)))
    assert (results[0].row, results[0].files_found) == (None, 1)
    assert mapping_file.load().rows == []
    assert not (share / "patient4" / "study" / "fileselection.txt").exists()


def test_add_study_folders_again_keeps_row(mapping_file, share):
    folders = [(share / "patient1" / "study", "anonA")]
    list(add_study_folders(mapping_file, folders, unc_resolver(mapping_file, share)))
    selection_id = FileSelectionFile(share / "patient1" / "study" / "fileselection.txt").load().id
    results = list(add_study_folders(mapping_file, [(share / "patient1" / "study", None)], unc_resolver(mapping_file, share)))
    assert results[0].already_in_mapping
    assert [row.pseudo_name for row in mapping_file.load().rows] == ["anonA"]
    assert FileSelectionFile(share / "patient1" / "study" / "fileselection.txt").load().id == selection_id


def test_add_study_folders_checks_pseudonyms_first(mapping_file, share):
    add_accession_numbers(mapping_file, [("1", "taken")])
    folders = [(share / "patient1" / "study", None), (share / "patient2" / "study", "taken")]
    with pytest.raises(MappingError, match="Pseudonym 'taken' .* is already used for accession_number:1"):
        list(add_study_folders(mapping_file, folders, unc_resolver(mapping_file, share)))
    assert not (share / "patient1" / "study" / "fileselection.txt").exists()


def test_add_study_folders_checks_root_first(mapping_file, share, tmp_path):
    set_root(mapping_file, "\\\\srv\\share\\data")
    outside = tmp_path / "elsewhere"
    copy_test_file("CT_small.dcm", outside / "1.dcm")
    folders = [(share / "patient1" / "study", None), (outside, None)]
    with pytest.raises(MappingError, match="Cannot add '.*elsewhere'"):
        list(add_study_folders(mapping_file, folders, unc_resolver(mapping_file, share)))
    assert mapping_file.load().rows == []


def test_add_study_folders_progress(mapping_file, share):
    started, progress = [], []
    folders = [(share / "patient1" / "study", None)]
    list(
        add_study_folders(
            mapping_file,
            folders,
            unc_resolver(mapping_file, share),
            on_scan_start=lambda folder, count: started.append((folder.name, count)),
            on_progress=progress.append,
        )
    )
    assert started == [("study", 3)]
    assert sum(progress) == 3


# --- accession numbers and selections ---


def test_add_accession_numbers(mapping_file):
    result = add_accession_numbers(mapping_file, [("12345678.1234567", None), ("2", "anon2")])
    assert [row.source for row in mapping_file.load().rows] == [
        AccessionNumberIdentifier("12345678.1234567"),
        AccessionNumberIdentifier("2"),
    ]
    assert result.added[1].pseudo_name == "anon2"


def test_add_accession_numbers_skips_present(mapping_file):
    add_accession_numbers(mapping_file, [("1", None)])
    result = add_accession_numbers(mapping_file, [("1", None), ("2", None)])
    assert (len(result.added), result.already_present) == (1, [AccessionNumberIdentifier("1")])


def test_add_accession_numbers_keeps_options(mapping_file):
    add_accession_numbers(mapping_file, [("1", None)])
    assert mapping_file.load().options.destination_path == "\\\\srv\\out"


def test_add_file_selection_folder(mapping_file, share):
    set_root(mapping_file, "\\\\srv\\share\\data")
    FileSelectionFile(share / "patient3" / "fileselection.txt", selected_paths=["raw/b.dcm"]).save()
    result = add_file_selection(mapping_file, share / "patient3", unc_resolver(mapping_file, share))
    assert result.added[0].source == FileSelectionIdentifier("patient3/fileselection.txt")


def test_add_file_selection_invalid(mapping_file, share):
    (share / "fileselection.txt").write_text("selected_paths: [\n")
    with pytest.raises(FileSelectionError, match="not valid YAML"):
        add_file_selection(mapping_file, share / "fileselection.txt", unc_resolver(mapping_file, share))


# --- folder patterns as Windows users write them ---


def test_expand_folder_patterns_backslashes(share):
    folders = expand_folder_patterns(["patient1\\study", "patient3\\raw\\"], share)
    assert [folder.relative_to(share).as_posix() for folder in folders] == ["patient1/study", "patient3/raw"]


def test_expand_folder_patterns_backslash_wildcard(share):
    folders = expand_folder_patterns(["patient*\\study"], share)
    assert [folder.relative_to(share).as_posix() for folder in folders] == ["patient1/study", "patient2/study", "patient4/study"]


def test_expand_folder_patterns_unc_path(share):
    mounts = [ShareMount(unc="\\\\srv\\share", local_path=str(share.parent))]
    folders = expand_folder_patterns(["\\\\srv\\share\\data\\patient2\\study"], share, mounts=mounts)
    assert folders == [share / "patient2" / "study"]


def test_expand_folder_patterns_unc_not_mounted(share):
    with pytest.raises(UserInputError, match="does not report where the share is mounted"):
        expand_folder_patterns(["\\\\srv\\other\\patient2"], share, mounts=[])


@pytest.mark.skipif(sys.platform == "win32", reason="drive letters are valid there")
def test_expand_folder_patterns_drive_letter(share):
    with pytest.raises(UserInputError, match="drive letters only exist on Windows"):
        expand_folder_patterns(["H:\\data\\patient1"], share)


@pytest.mark.parametrize("pattern", ["", "  "])
def test_expand_folder_patterns_empty(share, pattern):
    with pytest.raises(UserInputError, match="the path is empty"):
        expand_folder_patterns([pattern], share)


def test_expand_folder_patterns_bracket_name(share):
    copy_test_file("CT_small.dcm", share / "scan [1]" / "1.dcm")
    assert expand_folder_patterns(["scan [1]"], share) == [share / "scan [1]"]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need extra rights on Windows")
def test_expand_folder_patterns_symlink_loop(share):
    (share / "patient1" / "up").symlink_to(share)
    (share / "patient1" / "up2").symlink_to(share)
    folders = expand_folder_patterns(["**/raw"], share)
    assert [folder.relative_to(share).as_posix() for folder in folders] == ["patient3/raw"]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need extra rights on Windows")
def test_expand_folder_patterns_link_counts_once(share):
    (share / "link_to_patient2").symlink_to(share / "patient2")
    folders = expand_folder_patterns(["patient2/study", "link_to_patient2/study"], share)
    assert folders == [share / "patient2" / "study"]
