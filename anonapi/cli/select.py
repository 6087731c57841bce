"""``anon select``: the file selection in the current folder, the input of one job."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator, Optional, Tuple

import click

from anonapi.cli.context import AnonCommandContext, pass_anon_context
from anonapi.cli.options import yes_option
from anonapi.exceptions import FileSelectionError

# Paths listed by 'anon select status' before it only counts the rest.
STATUS_PATH_LIMIT = 10

check_dicom_option = click.option(
    "--check-dicom/--no-check-dicom",
    default=True,
    show_default=True,
    help="Read each file's header and keep only DICOM files. With --no-check-dicom the name decides: "
    "no extension, a digits-only extension, .dcm or .dicom.",
)


@click.group(name="select")
def select() -> None:
    """Select files for a single job.

    The selection is the file fileselection.txt in the current folder. A
    mapping row 'fileselection:<path>' makes it the input of a job.
    """


@select.command(name="add")
@click.argument("patterns", nargs=-1, required=True)
@click.option(
    "--recurse/--no-recurse", default=True, show_default=True, help="Also look for matching files in subfolders."
)
@check_dicom_option
@click.option(
    "-e",
    "--exclude-pattern",
    "exclude_patterns",
    multiple=True,
    metavar="PATTERN",
    help="Leave out files whose name or relative path matches PATTERN (* matches any part of a name). "
    "Give it several times to leave out several patterns.",
)
@pass_anon_context
def add(
    context: AnonCommandContext, patterns: Tuple[str, ...], recurse: bool, check_dicom: bool, exclude_patterns: Tuple[str, ...]
) -> None:
    """Add the files matching PATTERNS to the selection in the current folder.

    '*' is every file, 'study2/*' every file in study2 and '*.dcm' every
    .dcm file; a folder name means every file in it. Put patterns in
    quotes so that the shell does not expand them. The selection is
    created if it does not exist; fileselection.txt itself is never added.
    """
    from anonapi.selection import select_files

    with scan_progress(context) as (on_scan_start, on_progress):
        result = select_files(
            context.current_dir,
            patterns,
            recurse=recurse,
            check_dicom=check_dicom,
            exclude_patterns=exclude_patterns,
            on_scan_start=on_scan_start,
            on_progress=on_progress,
        )
    kind = "DICOM" if check_dicom else "named like DICOM"
    click.echo(
        f"Found {result.files_found} matching file{'' if result.files_found == 1 else 's'}, "
        f"{result.dicom_count} {kind}. Added {result.files_added} to '{result.selection.path}', which now lists "
        f"{len(result.selection.selected_paths)} file{'' if len(result.selection.selected_paths) == 1 else 's'}."
    )


@select.command(name="status")
@pass_anon_context
def status(context: AnonCommandContext) -> None:
    """Show the selection in the current folder."""
    selection = _load_selection(context)
    paths = selection.selected_paths
    click.echo(f"Selection '{selection.path}' lists {len(paths)} files.")
    click.echo(f"Description: {selection.description}")
    for path in paths[:STATUS_PATH_LIMIT]:
        click.echo(f"  {path}")
    if len(paths) > STATUS_PATH_LIMIT:
        click.echo(f"  ... and {len(paths) - STATUS_PATH_LIMIT} more")


@select.command(name="edit")
@pass_anon_context
def edit(context: AnonCommandContext) -> None:
    """Open the selection in the current folder in an editor.

    Uses $VISUAL or $EDITOR if set, else the program the system opens .txt files with.
    """
    selection = _load_selection(context)
    if open_in_editor(selection.path):
        selection.load()
        click.echo(f"Selection '{selection.path}' lists {len(selection.selected_paths)} files.")


@select.command(name="delete")
@yes_option
@pass_anon_context
def delete(context: AnonCommandContext, yes: bool) -> None:
    """Delete the selection file in the current folder."""
    from anonapi.selection import DEFAULT_SELECTION_FILE_NAME, FileSelectionFile

    selection = FileSelectionFile(context.current_dir / DEFAULT_SELECTION_FILE_NAME)
    if not selection.exists():
        raise FileSelectionError(f"No file selection in '{context.current_dir}': '{DEFAULT_SELECTION_FILE_NAME}' not found.")
    if not yes:
        click.confirm(f"Delete '{selection.path}'?", abort=True)
    selection.delete()
    click.echo(f"Deleted '{selection.path}'.")


def _load_selection(context: AnonCommandContext):
    from anonapi.selection import DEFAULT_SELECTION_FILE_NAME, FileSelectionFile

    path = context.current_dir / DEFAULT_SELECTION_FILE_NAME
    if not path.is_file():
        raise FileSelectionError(
            f"No file selection in '{context.current_dir}': '{DEFAULT_SELECTION_FILE_NAME}' not found. "
            f"Create one with 'anon select add PATTERN'."
        )
    return FileSelectionFile(path).load()


def open_in_editor(path: Path) -> bool:
    """Open ``path`` in $VISUAL or $EDITOR and wait, or else in the system's program for its type.

    Returns True if the editor has closed (so the file can be checked), False
    if the system program was started and may still be open.
    """
    if os.environ.get("VISUAL") or os.environ.get("EDITOR"):
        click.edit(filename=str(path))
        return True
    click.launch(str(path))
    return False


@contextlib.contextmanager
def scan_progress(context: AnonCommandContext) -> Iterator[tuple]:
    """Show a progress bar per scanned folder on stderr, and keep pydicom's messages about odd files quiet.

    Yields ``(on_scan_start(folder, file_count), on_progress(count))``. The
    bar is hidden when stderr is not a terminal. pydicom warns about every
    file that breaks a DICOM rule it can work around; those messages are
    shown with -v.
    """
    from tqdm import tqdm

    bar: Optional[tqdm] = None

    def on_scan_start(folder: Path, file_count: int) -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        if file_count:
            bar = tqdm(total=file_count, desc=folder.name or str(folder), unit=" files", file=sys.stderr, disable=None, leave=False)

    def on_progress(count: int) -> None:
        nonlocal bar
        if bar is None:
            return
        bar.update(count)
        if bar.n >= file_total(bar):
            # Closed before the caller prints the folder's result, so the two do not mix on the terminal.
            bar.close()
            bar = None

    def file_total(progress_bar: tqdm) -> int:
        return progress_bar.total or 0

    pydicom_logger = logging.getLogger("pydicom")
    previous_level = pydicom_logger.level
    with warnings.catch_warnings():
        if context.verbosity < 1:
            warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
            pydicom_logger.setLevel(logging.ERROR)
        try:
            yield on_scan_start, on_progress
        finally:
            pydicom_logger.setLevel(previous_level)
            if bar is not None:
                bar.close()
