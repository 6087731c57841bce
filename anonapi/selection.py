"""File selections: a list of files in one folder that together form the input of one job.

A file selection file, by default ``fileselection.txt``, is YAML::

    description: patient1 study, selected by anonapi
    id: bfc33f5e-d1cc-472e-aa05-31a5979d52be
    selected_paths:
    - study1/1.dcm
    - study1/2.dcm

``selected_paths`` are relative to the folder that contains the file and
must lie in that folder or below it. The format is the one anonapi 2.1.2 writes.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

import yaml

from anonapi.dicom import ProgressCallback, list_files, select_dicom_files
from anonapi.exceptions import FileLockedError, FileSelectionError, UserInputError
from anonapi.fileio import atomic_write_text, delete_file
from anonapi.inputfile import read_text_file

DEFAULT_SELECTION_FILE_NAME = "fileselection.txt"

# Files that anonapi itself writes next to the data. They are never part of a selection.
ANONAPI_FILE_NAMES = frozenset({DEFAULT_SELECTION_FILE_NAME, "anon_mapping.csv", ".anonbatch"})

_DRIVE_PATTERN = re.compile(r"^[A-Za-z]:/")
_WILDCARD_PATTERN = re.compile(r"[*?[]")
# Windows compares paths without case.
_IGNORE_CASE = os.name == "nt"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class FileSelectionFile:
    """A file selection file: ``description``, ``id`` and ``selected_paths`` relative to its folder.

    ``selected_paths`` are strings with forward slashes, normalized (no
    ``.`` or ``..`` parts), without repeats.

    Create one for a new selection, or call load() to read an existing file.
    """

    def __init__(
        self,
        path: os.PathLike | str,
        description: str = "",
        id: Optional[str] = None,
        selected_paths: Optional[Iterable[os.PathLike | str]] = None,
    ):
        self.path = Path(path)
        self.description = description
        self.id = id or str(uuid.uuid4())
        self.selected_paths: List[str] = []
        if selected_paths is not None:
            self.add_paths(selected_paths)

    @property
    def folder(self) -> Path:
        """The folder that contains the file. Selected paths are relative to it."""
        return self.path.parent

    def exists(self) -> bool:
        """Return True if the file exists on disk."""
        return self.path.is_file()

    def load(self) -> "FileSelectionFile":
        """Read the file into this object and return it.

        :raises FileSelectionError: if the file is missing or invalid, naming the problem and the fix
        :raises FileLockedError: if another program holds the file open
        """
        if not self.path.is_file():
            raise FileSelectionError(
                f"File selection '{self.path}' not found. Create one with 'anon select add' in its folder."
            )
        text = read_text_file(self.path, FileSelectionError)
        try:
            content = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            raise FileSelectionError(
                f"Invalid file selection '{self.path}'{where}: not valid YAML ({getattr(error, 'problem', error)}). "
                f"Correct the file or create it again with 'anon select add'."
            ) from error
        self._read_content(content)
        return self

    def save(self) -> None:
        """Write the file atomically.

        :raises FileLockedError: if another program holds the file open
        """
        content = {
            "description": self.description,
            "id": self.id,
            "selected_paths": list(self.selected_paths),
        }
        text = yaml.dump(content, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True)
        atomic_write_text(self.path, text)

    def delete(self) -> None:
        """Remove the file from disk.

        :raises FileLockedError: if another program holds the file open, or the folder is read-only
        """
        delete_file(self.path)

    def add_paths(self, paths: Iterable[os.PathLike | str]) -> int:
        """Add paths (absolute, or relative to the folder) that are not selected yet.

        Returns the number of paths added.

        :raises FileSelectionError: if a path lies outside the folder
        """
        present = set(self.selected_paths)
        folder_prefix = self._folder_prefix()
        added = 0
        for path in paths:
            relative = self._to_relative(path, folder_prefix)
            if relative not in present:
                present.add(relative)
                self.selected_paths.append(relative)
                added += 1
        return added

    def absolute_paths(self) -> List[Path]:
        """Return the selected paths as absolute local paths."""
        return [self.folder.joinpath(*path.split("/")) for path in self.selected_paths]

    def _read_content(self, content: object) -> None:
        if content is None:
            content = {}
        if not isinstance(content, dict):
            raise FileSelectionError(
                f"Invalid file selection '{self.path}': expected the keys description, id and selected_paths, "
                f"found a {type(content).__name__}. Create the file again with 'anon select add'."
            )
        self.description = "" if content.get("description") is None else str(content["description"])
        self.id = self._read_id(content.get("id"))
        paths = content.get("selected_paths") or []
        if not isinstance(paths, list):
            raise FileSelectionError(
                f"Invalid file selection '{self.path}': selected_paths must be a list of paths, one per line "
                f"starting with '- '. Correct the file or create it again with 'anon select add'."
            )
        self.selected_paths = []
        present = set()
        folder_prefix = self._folder_prefix()
        for index, path in enumerate(paths, start=1):
            if not isinstance(path, str) or not path.strip():
                raise FileSelectionError(
                    f"Invalid file selection '{self.path}': entry {index} of selected_paths ({path!r}) is not a path. "
                    f"Remove it or replace it with a path."
                )
            try:
                relative = self._to_relative(path.strip(), folder_prefix)
            except FileSelectionError as error:
                raise FileSelectionError(f"{error} (entry {index} of selected_paths)") from None
            if relative not in present:
                present.add(relative)
                self.selected_paths.append(relative)

    def _read_id(self, value: object) -> str:
        if value is None:
            return str(uuid.uuid4())
        try:
            return str(uuid.UUID(str(value)))
        except ValueError as error:
            raise FileSelectionError(
                f"Invalid file selection '{self.path}': id '{value}' is not a UUID. "
                f"Remove the id line to get a new one."
            ) from error

    def _folder_prefix(self) -> str:
        """Return the absolute folder with forward slashes and a slash at the end, for prefix tests."""
        return os.path.abspath(self.folder).replace("\\", "/").rstrip("/") + "/"

    def _to_relative(self, path: os.PathLike | str, folder_prefix: str) -> str:
        text = os.fspath(path).replace("\\", "/")
        if text.startswith("/") or _DRIVE_PATTERN.match(text):
            if "/." in text or "//" in text:
                text = posixpath.normpath(text)
            if _IGNORE_CASE:
                inside = text.lower().startswith(folder_prefix.lower())
            else:
                inside = text.startswith(folder_prefix)
            relative = text[len(folder_prefix):] if inside else ".."
        else:
            relative = text
        if "/." in relative or "//" in relative or relative.startswith(".") or relative.endswith("/"):
            relative = posixpath.normpath(relative)
        if relative in ("", ".", "..") or relative.startswith("../"):
            raise FileSelectionError(
                f"Invalid path '{os.fspath(path)}' in file selection '{self.path}': selected paths must lie in "
                f"'{self.folder}' or below it. Put the file selection in a folder that contains the file."
            )
        return relative


@dataclass
class SelectionResult:
    """Counts from one selection run: matching files, DICOM files among them, and paths added."""

    selection: FileSelectionFile
    files_found: int = 0
    dicom_count: int = 0
    files_added: int = 0


def find_matching_files(
    folder: Path,
    patterns: Sequence[str],
    recurse: bool = True,
    exclude_patterns: Sequence[str] = (),
) -> List[Path]:
    """Return the files in ``folder`` that match one of ``patterns`` and none of ``exclude_patterns``.

    A pattern is a path relative to ``folder`` whose last part matches file
    names (``*`` matches any part of a name): ``*`` is every file,
    ``study2/*`` every file in ``study2``, ``*.dcm`` every .dcm file. The
    folder part may hold wildcards too. With ``recurse``, files in subfolders
    of the matched folders count as well. A pattern that names a folder means
    every file in it. Exclude patterns match the file name or the path
    relative to ``folder``. Files that anonapi writes (fileselection.txt,
    anon_mapping.csv, .anonbatch) are never returned.

    :raises UserInputError: if a pattern points outside ``folder``
    """
    return [Path(path) for path in _matching_paths(Path(folder), patterns, recurse, exclude_patterns)]


def _matching_paths(folder: Path, patterns: Sequence[str], recurse: bool, exclude_patterns: Sequence[str]) -> List[str]:
    """Return what find_matching_files returns, as absolute path strings sorted folder by folder."""
    folder = Path(os.path.abspath(folder))
    # Relative paths are matched with '/', so exclude patterns with Windows separators (\) match too.
    exclude_patterns = [exclude.replace("\\", "/") for exclude in exclude_patterns]
    if len(patterns) == 1:
        found = _files_for_pattern(folder, patterns[0], recurse)
    else:
        unique = set()
        for pattern in patterns:
            unique.update(_files_for_pattern(folder, pattern, recurse))
        found = sorted(unique, key=lambda path: path.split(os.sep))
    prefix_length = len(str(folder).rstrip(os.sep)) + 1
    selected = []
    for path in found:
        name = path.rpartition(os.sep)[2]
        if name in ANONAPI_FILE_NAMES:
            continue
        if exclude_patterns:
            relative = path[prefix_length:].replace(os.sep, "/")
            if any(fnmatch.fnmatch(name, exclude) or fnmatch.fnmatch(relative, exclude) for exclude in exclude_patterns):
                continue
        selected.append(path)
    return selected


def select_files(
    folder: Path,
    patterns: Sequence[str],
    recurse: bool = True,
    check_dicom: bool = True,
    exclude_patterns: Sequence[str] = (),
    on_scan_start: Optional[Callable[[Path, int], None]] = None,
    on_progress: Optional[ProgressCallback] = None,
    file_name: str = DEFAULT_SELECTION_FILE_NAME,
) -> SelectionResult:
    """Add the DICOM files matching ``patterns`` to the file selection in ``folder`` and save it.

    Creates the selection file if it does not exist. See find_matching_files
    for the patterns and dicom.select_dicom_files for ``check_dicom``.
    ``on_scan_start(folder, file_count)`` is called once the matching files
    are known, and ``on_progress(count)`` as they are checked.

    :raises UserInputError: if a pattern points outside ``folder``, or no
        file matches, or none of the matching files is DICOM. The selection
        file is then left as it was.
    :raises FileSelectionError: if the existing selection file is invalid
    """
    folder = Path(os.path.abspath(folder))
    selection = FileSelectionFile(folder / file_name, description=f"{folder.name} selected by anonapi")
    if selection.exists():
        selection.load()
    files = _matching_paths(folder, patterns, recurse, exclude_patterns)
    pattern_text = ", ".join(f"'{pattern}'" for pattern in patterns)
    if not files:
        where = "" if recurse else " (subfolders not searched)"
        raise UserInputError(
            f"No files match {pattern_text} in '{folder}'{where}, so nothing was added. "
            f"Check the pattern and the exclude patterns."
        )
    if on_scan_start is not None:
        on_scan_start(folder, len(files))
    dicom_files = select_dicom_files(files, check_dicom=check_dicom, on_progress=on_progress)
    if not dicom_files:
        if check_dicom:
            problem = "is DICOM"
            fix = "use --no-check-dicom to choose files by name"
        else:
            problem = "has a DICOM name (no extension, digits only, .dcm or .dicom)"
            fix = "use --check-dicom to read the file headers"
        raise UserInputError(
            f"None of the {len(files)} files matching {pattern_text} in '{folder}' {problem}, so nothing was added. "
            f"Check the pattern, or {fix}."
        )
    added = selection.add_paths(dicom_files)
    selection.save()
    return SelectionResult(selection=selection, files_found=len(files), dicom_count=len(dicom_files), files_added=added)


def _files_for_pattern(folder: Path, pattern: str, recurse: bool) -> List[str]:
    pattern = pattern.replace("\\", "/").strip()
    if not pattern:
        raise UserInputError("Invalid pattern '': give a file name pattern such as '*' or 'study1/*.dcm'.")
    if os.path.isabs(pattern):
        target = Path(os.path.normpath(pattern))
    else:
        target = Path(os.path.normpath(folder / pattern))
    if target != folder and folder not in target.parents:
        raise UserInputError(
            f"Invalid pattern '{pattern}': it points outside the current folder '{folder}'. "
            f"Run the command in a folder that contains the files."
        )
    if target.is_dir():
        return list_files(target, recurse=recurse)
    if target.is_file():
        return [str(target)]

    directory_pattern, name_pattern = os.path.split(os.path.relpath(target, folder))
    directories = glob_folders(directory_pattern or os.curdir, base_folder=folder)
    files: List[str] = []
    for directory in directories:
        paths = list_files(directory, recurse=recurse)
        if name_pattern == "*":
            files.extend(paths)
        else:
            files.extend(path for path in paths if fnmatch.fnmatch(path.rpartition(os.sep)[2], name_pattern))
    if len(directories) > 1:
        # Folders can nest when the folder part has wildcards, so remove repeats and keep the order.
        files = sorted(set(files), key=lambda path: path.split(os.sep))
    return files


def has_wildcards(pattern: str) -> bool:
    """Return True if ``pattern`` contains ``*``, ``?`` or ``[``, the wildcards of glob_folders."""
    return _WILDCARD_PATTERN.search(pattern) is not None


def glob_folders(pattern: str, base_folder: Optional[os.PathLike | str] = None) -> List[str]:
    """Return the folders that match ``pattern``, as absolute paths sorted folder by folder, without repeats.

    Works like ``glob.glob(pattern, recursive=True)`` restricted to folders:
    ``*`` matches any part of a name, and a ``**`` part matches any number
    of folders, including none. Unlike glob, ``**`` does not descend into
    symbolic links to folders, so a link to a folder above itself cannot make
    the search loop. As in glob, a wildcard matches a name that starts with a
    dot only if the pattern part starts with a dot. A part also matches the
    folder of exactly its name, so ``scan [1]`` finds a folder of that name.

    A relative pattern is relative to ``base_folder`` (default: the working
    folder), whose own name is taken literally.
    """
    if os.path.isabs(pattern):
        drive, rest = os.path.splitdrive(os.path.abspath(pattern))
        start = drive + os.sep
    else:
        start = os.path.abspath(base_folder if base_folder is not None else os.curdir)
        rest = os.path.normpath(pattern)
    parts = [part for part in rest.split(os.sep) if part and part != os.curdir]
    found = set(_match_folders(start, parts))
    return sorted(found, key=lambda path: path.split(os.sep))


def _match_folders(folder: str, parts: List[str]) -> Iterator[str]:
    if not parts:
        yield folder
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        for below in _folders_below(folder):
            yield from _match_folders(below, rest)
    elif has_wildcards(part):
        for name in _subfolder_names(folder):
            # A name equal to the part also matches, for folders named like 'scan [1]'.
            matches = fnmatch.fnmatch(name, part) and (part.startswith(".") or not name.startswith("."))
            if matches or name == part:
                yield from _match_folders(os.path.join(folder, name), rest)
    else:
        path = os.path.join(folder, part)
        if os.path.isdir(path):
            yield from _match_folders(path, rest)


def _subfolder_names(folder: str) -> List[str]:
    """Return the names of the folders in ``folder``, including symbolic links to folders."""
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_dir()]
    except OSError:
        return []


def _folders_below(folder: str) -> Iterator[str]:
    """Yield ``folder`` and every folder below it, not following symbolic links to folders or hidden folders."""
    pending = [folder]
    while pending:
        current = pending.pop()
        yield current
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
        except OSError:
            continue
