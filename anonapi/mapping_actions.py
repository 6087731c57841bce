"""Add rows to a mapping file: study folders, accession numbers and file selections.

Each change loads the mapping, changes it and saves it under a lock, so a
long scan of study folders saves every folder as soon as it is done and
two anon processes cannot lose each other's rows.

Paths in ``folder:`` and ``fileselection:`` sources are relative to the
mapping's ``root_source_path``. That option is a UNC path, or a local path
until it is made one, so a local folder is matched to it through its UNC
path (see anonapi.unc) or through the local folder where the root is mounted.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Mapping as MappingType, Optional, Sequence, Tuple

from anonapi.dicom import ProgressCallback, select_dicom_files
from anonapi.exceptions import FileSelectionError, MappingError, UserInputError
from anonapi.fileio import file_lock
from anonapi.mapper import Mapping, MappingFile, MappingRow, check_new_pseudonyms, generated_description
from anonapi.parameters import AccessionNumberIdentifier, FileSelectionIdentifier, SourceIdentifier
from anonapi.selection import (
    DEFAULT_SELECTION_FILE_NAME,
    FileSelectionFile,
    find_matching_files,
    glob_folders,
    has_wildcards,
)
from anonapi.unc import ShareMount, find_share_mounts, is_unc_path, to_local, to_unc, unc_relative_to


@dataclass
class StudyFolderResult:
    """The outcome of adding one study folder to a mapping.

    ``row`` is None when the folder contains no DICOM files and was not added.
    ``already_in_mapping`` is True when the mapping had a row for the folder's
    selection before; the selection file is then rewritten but the row kept.
    """

    folder: Path
    files_found: int
    dicom_count: int
    row: Optional[MappingRow] = None
    already_in_mapping: bool = False


@dataclass
class AddRowsResult:
    """Rows added to a mapping, and sources left out because the mapping had them already."""

    added: List[MappingRow] = field(default_factory=list)
    already_present: List[SourceIdentifier] = field(default_factory=list)


class SourcePathResolver:
    """Turn local paths into paths relative to a mapping's ``root_source_path``.

    When the mapping has no ``root_source_path``, the first call sets it to
    the UNC path of ``current_dir`` if that is known, else to ``current_dir``
    itself. ``root_was_set`` is then that value, for the caller to report.
    """

    def __init__(
        self,
        mapping_file: MappingFile,
        current_dir: Path,
        settings_unc_map: Optional[MappingType[str, str]] = None,
        mounts: Optional[List[ShareMount]] = None,
    ):
        self.mapping_file = mapping_file
        self.current_dir = Path(os.path.abspath(current_dir))
        self.settings_unc_map = dict(settings_unc_map or {})
        self.mounts = find_share_mounts() if mounts is None else mounts
        self.root_was_set: Optional[str] = None

    def ensure_root(self, mapping: Mapping) -> str:
        """Return the mapping's root_source_path, setting it first if it is empty."""
        if not mapping.options.root_source_path:
            root = to_unc(self.current_dir, self.settings_unc_map, self.mounts) or str(self.current_dir)
            mapping.options.root_source_path = root
            self.root_was_set = root
        return mapping.options.root_source_path

    def relative_path(self, local_path: Path, root: str) -> str:
        """Return ``local_path`` relative to ``root`` with forward slashes.

        :raises MappingError: if the path is not below the root, or the root
            is a UNC path that is not mounted on this computer
        """
        local_path = Path(os.path.abspath(local_path))
        if is_unc_path(root):
            unc = to_unc(local_path, self.settings_unc_map, self.mounts)
            if unc is not None:
                relative = unc_relative_to(unc, root)
                if relative is not None:
                    return relative
                raise MappingError(
                    f"Cannot add '{local_path}': its UNC path '{unc}' is not below root_source_path '{root}'. "
                    f"Add folders below the root, or change root_source_path with 'anon map edit'."
                )
            local_root = to_local(root, self.settings_unc_map, self.mounts)
            if local_root is None:
                raise MappingError(
                    f"Cannot add '{local_path}': this computer does not report where root_source_path '{root}' "
                    f"is mounted. Add the local folder and its UNC path to unc_paths in the settings file, "
                    f"or mount the share."
                )
        else:
            local_root = self.local_root(root)
        try:
            relative = Path(os.path.normpath(local_path)).relative_to(os.path.normpath(local_root))
        except ValueError:
            raise MappingError(
                f"Cannot add '{local_path}': it is not inside root_source_path '{root}'. "
                f"Add folders inside it, or change root_source_path with 'anon map edit'."
            ) from None
        return relative.as_posix()

    def local_root(self, root: str) -> Path:
        """Return a root_source_path that is not a UNC path as a local folder.

        A relative root is relative to the mapping's folder. anonapi 2.1.2
        writes local POSIX paths with backslashes (``\\tmp\\data``), and these
        are read back as POSIX paths.
        """
        text = root
        if sys.platform != "win32" and text.startswith("\\") and "/" not in text:
            text = text.replace("\\", "/")
        path = Path(text)
        if not path.is_absolute():
            path = self.mapping_file.path.parent / path
        return Path(os.path.abspath(path))


def expand_folder_patterns(
    patterns: Sequence[str],
    current_dir: Path,
    settings_unc_map: Optional[MappingType[str, str]] = None,
    mounts: Optional[List[ShareMount]] = None,
) -> List[Path]:
    """Return the folders that the paths in ``patterns`` name, in order and without repeats.

    A pattern may contain ``*`` (any part of a name) and ``**`` (any number of
    folders, including none). Files that match are left out. Paths written on
    Windows work on other systems too: ``\\`` separates folders when no file
    or folder has the name as written, and a UNC path is translated to the
    local folder where its share is mounted (see anonapi.unc.to_local). Two
    paths that lead to the same folder through symbolic links count once.

    :raises UserInputError: if a path without wildcards is not a folder, or a pattern matches no folder
    """
    folders: List[Path] = []
    for pattern in patterns:
        local_pattern = _local_pattern(pattern, current_dir, settings_unc_map, mounts)
        # A folder whose name contains wildcard characters, such as 'scan [1]', is taken as it is.
        if has_wildcards(local_pattern) and not os.path.isdir(os.path.join(current_dir, local_pattern)):
            matches = [Path(path) for path in glob_folders(local_pattern, base_folder=current_dir)]
            if not matches:
                raise UserInputError(f"No folder matches '{pattern}' in '{current_dir}'. Check the pattern.")
            folders.extend(matches)
        else:
            folders.append(_existing_folder(pattern, local_pattern, current_dir))
    unique: List[Path] = []
    seen = set()
    for folder in folders:
        key = os.path.normcase(os.path.realpath(folder))
        if key not in seen:
            seen.add(key)
            unique.append(Path(os.path.abspath(folder)))
    return unique


def _local_pattern(
    pattern: str,
    current_dir: Path,
    settings_unc_map: Optional[MappingType[str, str]],
    mounts: Optional[List[ShareMount]],
) -> str:
    """Return ``pattern`` as a path on this computer: UNC paths translated, ``\\`` as separator.

    :raises UserInputError: if the pattern is empty, or is a UNC or drive path that this computer cannot reach
    """
    if not pattern.strip():
        raise UserInputError("Invalid folder '': the path is empty. Give the path of a study folder.")
    if os.sep == "\\" or os.path.lexists(os.path.join(current_dir, pattern)):
        return pattern
    if is_unc_path(pattern):
        local = to_local(pattern, settings_unc_map, mounts)
        if local is None:
            raise UserInputError(
                f"Cannot find folder '{pattern}': this computer does not report where the share is mounted. "
                f"Give the local path of the folder, mount the share, or add the local folder and its UNC path "
                f"to unc_paths in the settings file."
            )
        return str(local)
    if "\\" not in pattern:
        return pattern
    if re.match(r"^[A-Za-z]:\\", pattern):
        raise UserInputError(
            f"Cannot find folder '{pattern}': drive letters only exist on Windows. "
            f"Give the path of the folder on this computer, relative to '{current_dir}'."
        )
    return pattern.replace("\\", "/")


def add_study_folders(
    mapping_file: MappingFile,
    folders: Sequence[Tuple[Path, Optional[str]]],
    resolver: SourcePathResolver,
    check_dicom: bool = True,
    on_scan_start: Optional[Callable[[Path, int], None]] = None,
    on_progress: Optional[ProgressCallback] = None,
) -> Iterator[StudyFolderResult]:
    """Add each folder's DICOM files as a file selection and a ``fileselection:`` row; yield each result.

    ``folders`` pairs each folder with its pseudonym, or None to generate
    one. All folders are checked against root_source_path and all
    pseudonyms against the mapping before the first scan. Then each folder
    is scanned (``on_scan_start(folder, file_count)`` and ``on_progress``
    report it), its ``fileselection.txt`` written, and the mapping saved.
    A folder without DICOM files gets no selection and no row.

    :raises MappingError: if a folder is outside root_source_path or a pseudonym is taken
    """
    with file_lock(mapping_file.path):
        mapping = mapping_file.load()
        root = resolver.ensure_root(mapping)
        planned = []
        for folder, pseudonym in folders:
            relative = resolver.relative_path(folder, root)
            source = FileSelectionIdentifier(_join_relative(relative, DEFAULT_SELECTION_FILE_NAME))
            planned.append((Path(folder), source, pseudonym))
        check_new_pseudonyms(mapping, [(source, pseudonym) for _, source, pseudonym in planned])
        if resolver.root_was_set:
            mapping_file.save(mapping)

    for folder, source, pseudonym in planned:
        files = find_matching_files(folder, ["*"], recurse=True)
        if on_scan_start is not None:
            on_scan_start(folder, len(files))
        dicom_files = select_dicom_files(files, check_dicom=check_dicom, on_progress=on_progress)
        result = StudyFolderResult(folder=folder, files_found=len(files), dicom_count=len(dicom_files))
        if dicom_files:
            _write_selection(folder, dicom_files)
            with file_lock(mapping_file.path):
                mapping = mapping_file.load()
                result.already_in_mapping = mapping.find_row(source) is not None
                result.row = mapping.add_row(source, pseudonym, generated_description())
                mapping_file.save(mapping)
        yield result


def add_accession_numbers(mapping_file: MappingFile, numbers: Sequence[Tuple[str, Optional[str]]]) -> AddRowsResult:
    """Add an ``accession_number:`` row for each (accession number, pseudonym or None) pair.

    Numbers already in the mapping are left out and listed in the result.

    :raises MappingError: if an accession number is empty or a pseudonym is taken
    """
    sources = [(AccessionNumberIdentifier(number), pseudonym) for number, pseudonym in numbers]
    return _add_sources(mapping_file, sources)


def add_file_selection(mapping_file: MappingFile, selection_path: Path, resolver: SourcePathResolver) -> AddRowsResult:
    """Add a ``fileselection:`` row for an existing file selection file (or a folder that contains one).

    :raises FileSelectionError: if the file is missing or invalid
    :raises MappingError: if it is not below root_source_path
    """
    selection_path = Path(os.path.abspath(selection_path))
    if selection_path.is_dir():
        selection_path = selection_path / DEFAULT_SELECTION_FILE_NAME
    FileSelectionFile(selection_path).load()
    with file_lock(mapping_file.path):
        mapping = mapping_file.load()
        root = resolver.ensure_root(mapping)
        source = FileSelectionIdentifier(resolver.relative_path(selection_path, root))
        result = _add_to_mapping(mapping, [(source, None)])
        mapping_file.save(mapping)
    return result


def _add_sources(mapping_file: MappingFile, sources: Sequence[Tuple[SourceIdentifier, Optional[str]]]) -> AddRowsResult:
    with file_lock(mapping_file.path):
        mapping = mapping_file.load()
        check_new_pseudonyms(mapping, sources)
        result = _add_to_mapping(mapping, sources)
        mapping_file.save(mapping)
    return result


def _add_to_mapping(mapping: Mapping, sources: Sequence[Tuple[SourceIdentifier, Optional[str]]]) -> AddRowsResult:
    result = AddRowsResult()
    description = generated_description()
    for source, pseudonym in sources:
        if mapping.find_row(source) is not None:
            result.already_present.append(source)
            continue
        result.added.append(mapping.add_row(source, pseudonym, description))
    return result


def _write_selection(folder: Path, dicom_files: List[Path]) -> FileSelectionFile:
    """Write the folder's file selection with exactly ``dicom_files``, keeping the id of an earlier one."""
    selection = FileSelectionFile(folder / DEFAULT_SELECTION_FILE_NAME, description=f"{folder.name} selected by anonapi")
    if selection.exists():
        try:
            selection.id = FileSelectionFile(selection.path).load().id
        except FileSelectionError:
            pass  # an invalid earlier selection is replaced, with a new id
    selection.add_paths(dicom_files)
    selection.save()
    return selection


def _join_relative(relative_folder: str, name: str) -> str:
    return name if relative_folder in ("", ".") else f"{relative_folder}/{name}"


def _existing_folder(pattern: str, local_path: str, current_dir: Path) -> Path:
    folder = Path(local_path) if os.path.isabs(local_path) else current_dir / local_path
    if not folder.is_dir():
        if folder.exists():
            raise UserInputError(f"'{pattern}' is a file, not a folder. Give the folder that contains the study.")
        raise UserInputError(f"Folder '{pattern}' not found in '{current_dir}'. Check the path.")
    return folder
