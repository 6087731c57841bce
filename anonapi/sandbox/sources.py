"""Finding the input files of PATH jobs: a folder or a file selection in a share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

from anonapi.sandbox.shares import Share, ShareMap, resolve_inside

FOLDER_PREFIX = "folder:"
FILE_SELECTION_PREFIX = "fileselection:"


class SourceError(Exception):
    """The input files of a job cannot be found or read."""


def list_path_source(shares: ShareMap, source_path: str) -> List[Path]:
    """Return the input files of a PATH job, every one checked to be inside its share.

    ``source_path`` is a UNC path to a folder, bare or prefixed ``folder:``,
    or to a file selection file, prefixed ``fileselection:``. No file is read
    before all paths have been checked.

    :raises ShareError: if a path is not a UNC path, names an unknown share or leaves the share
    :raises SourceError: if the folder or file selection is missing or invalid
    """
    if source_path.startswith(FILE_SELECTION_PREFIX):
        unc_path = source_path[len(FILE_SELECTION_PREFIX):]
        share, path = shares.resolve(unc_path)
        return list_file_selection(share, path, unc_path)
    if source_path.startswith(FOLDER_PREFIX):
        source_path = source_path[len(FOLDER_PREFIX):]
    share, path = shares.resolve(source_path)
    return list_folder(share, path, source_path)


def list_folder(share: Share, folder: Path, shown_path: str) -> List[Path]:
    """Return every file in a folder and its subfolders, sorted.

    Symbolic links are checked to point inside the share. Linked folders are
    not entered, so that a link loop cannot make the walk endless.
    """
    if not folder.is_dir():
        raise SourceError(f"Source folder {shown_path} does not exist or is not a folder")

    files: List[Path] = []
    for directory, folder_names, file_names in os.walk(folder):
        directory_path = Path(directory)
        for folder_name in list(folder_names):
            path = directory_path / folder_name
            if path.is_symlink():
                resolve_inside(share, path, _shown(shown_path, folder, path))
                folder_names.remove(folder_name)
        for file_name in file_names:
            path = directory_path / file_name
            files.append(resolve_inside(share, path, _shown(shown_path, folder, path)))
    if not files:
        raise SourceError(f"Source folder {shown_path} contains no files")
    return sorted(files)


def list_file_selection(share: Share, selection_file: Path, shown_path: str) -> List[Path]:
    """Return the files that a file selection file lists, relative to its folder."""
    import yaml

    if not selection_file.is_file():
        raise SourceError(f"File selection {shown_path} does not exist")
    try:
        content = yaml.safe_load(selection_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise SourceError(f"Could not read file selection {shown_path}: {error}") from error
    selected = content.get("selected_paths") if isinstance(content, dict) else None
    if not isinstance(selected, list) or not selected:
        raise SourceError(f"File selection {shown_path} has no list 'selected_paths'")

    files = []
    for entry in selected:
        relative = str(entry).replace("\\", "/")
        path = resolve_inside(share, selection_file.parent / relative, f"{relative} in {shown_path}")
        files.append(path)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise SourceError(
            f"File selection {shown_path} lists {len(missing)} files that do not exist, "
            f"first: {_shown(shown_path, selection_file.parent, Path(missing[0]))}"
        )
    return files


def _shown(shown_root: str, root: Path, path: Path) -> str:
    """Return how to name a path below ``root`` in a message, starting from the UNC path."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return str(path)
    return shown_root.rstrip("\\/") + "\\" + "\\".join(relative.parts)
