"""``anon map``: build the mapping from sources (folders, selections, PACS studies) to pseudonyms."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import click

from anonapi.cli.context import AnonCommandContext, pass_anon_context
from anonapi.cli.options import yes_option
from anonapi.cli.select import check_dicom_option, open_in_editor, scan_progress
from anonapi.exceptions import MappingError, UserInputError

# Rows shown by 'anon map status' before it only counts the rest.
STATUS_ROW_LIMIT = 20


@click.group(name="map")
def map_group() -> None:
    """Build the mapping from sources to pseudonyms.

    The mapping (anon_mapping.csv) lists one job per row: where the data
    comes from, its pseudonyms and description, plus options such as the
    project and destination that apply to every row. 'anon create
    from-mapping' creates the jobs.
    """


@map_group.command(name="init")
@yes_option
@pass_anon_context
def init(context: AnonCommandContext, yes: bool) -> None:
    """Create a mapping in the current folder and make it the active one.

    project and destination_path come from 'anon create set-defaults'.
    root_source_path is the UNC path of the current folder when it is on a
    mapped drive or network mount, else it stays empty until the first
    study folder is added.
    """
    from anonapi.mapper import MAPPING_FILE_NAME, MappingFile, create_default_mapping
    from anonapi.unc import to_unc

    mapping_file = MappingFile(context.current_dir / MAPPING_FILE_NAME)
    if mapping_file.exists() and not yes:
        click.confirm(f"Mapping '{mapping_file.path}' exists. Overwrite it?", abort=True)
    settings = context.settings
    root = to_unc(context.current_dir, settings.unc_paths)
    mapping = create_default_mapping(
        project=settings.job_defaults.project_name,
        destination_path=settings.job_defaults.destination_path,
        root_source_path=root,
    )
    mapping_file.save(mapping)
    settings.active_mapping_file = mapping_file.path
    context.save_settings()
    click.echo(f"Created mapping '{mapping_file.path}' and made it the active mapping.")
    if root is None:
        click.echo(
            "root_source_path is empty because this folder is not on a known network share. "
            "'anon map add-study-folders' sets it, or set it to a UNC path with 'anon map edit'."
        )
    click.echo(
        "Add rows with 'anon map add-study-folders', 'anon map add-accession-numbers' or 'anon map add-selection'."
    )


@map_group.command(name="activate")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@pass_anon_context
def activate(context: AnonCommandContext, path: Optional[Path]) -> None:
    """Make the mapping at PATH the target of all other map commands.

    PATH is a mapping file or a folder that contains anon_mapping.csv. It
    is the current folder by default.
    """
    from anonapi.mapper import MAPPING_FILE_NAME, MappingFile

    path = context.current_dir / (path or ".")
    if path.is_dir():
        path = path / MAPPING_FILE_NAME
    mapping_file = MappingFile(path.resolve())
    mapping_file.load()
    context.settings.active_mapping_file = mapping_file.path
    context.save_settings()
    click.echo(f"Activated mapping '{mapping_file.path}'.")


@map_group.command(name="status")
@pass_anon_context
def status(context: AnonCommandContext) -> None:
    """Show the active mapping: its options and first rows."""
    from tabulate import tabulate

    mapping_file = active_mapping_file(context)
    mapping = mapping_file.load()
    click.echo(f"Mapping '{mapping_file.path}'")
    if mapping.description:
        click.echo(f"Description: {mapping.description}")
    options = mapping.options
    option_rows = [
        (name, getattr(options, name) or "(not set)")
        for name in ("root_source_path", "project", "destination_path", "pims_key")
    ]
    click.echo(tabulate(option_rows, tablefmt="plain", disable_numparse=True))
    click.echo(f"{len(mapping.rows)} rows")
    if mapping.rows:
        table = [
            (row.source.to_string(), row.pseudo_id or "", row.pseudo_name or "", row.description or "")
            for row in mapping.rows[:STATUS_ROW_LIMIT]
        ]
        # disable_numparse: show pseudonyms such as 1e5 or 0012 as written, not as numbers.
        headers = ["source", "pseudo_id", "pseudo_name", "description"]
        click.echo(tabulate(table, headers=headers, disable_numparse=True))
    if len(mapping.rows) > STATUS_ROW_LIMIT:
        click.echo(f"... and {len(mapping.rows) - STATUS_ROW_LIMIT} more rows. 'anon map edit' shows them all.")


@map_group.command(name="edit")
@pass_anon_context
def edit(context: AnonCommandContext) -> None:
    """Open the active mapping in an editor.

    Uses $VISUAL or $EDITOR if set, and then checks the mapping when the
    editor closes. Else opens it with the system's program for .csv files,
    usually Excel; close it there before running other map commands. If
    Excel offers to save in its own format, keep CSV.
    """
    mapping_file = active_mapping_file(context)
    if open_in_editor(mapping_file.path):
        mapping = mapping_file.load()
        click.echo(f"Mapping '{mapping_file.path}' is valid and has {len(mapping.rows)} rows.")


@map_group.command(name="delete")
@yes_option
@pass_anon_context
def delete(context: AnonCommandContext, yes: bool) -> None:
    """Delete the active mapping file and deactivate it."""
    mapping_file = active_mapping_file(context)
    if not yes:
        click.confirm(f"Delete mapping '{mapping_file.path}'?", abort=True)
    mapping_file.delete()
    context.settings.active_mapping_file = None
    context.save_settings()
    click.echo(f"Deleted mapping '{mapping_file.path}'.")


@map_group.command(name="add-study-folders")
@click.argument("paths", nargs=-1)
@click.option(
    "-f",
    "--input-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV or XLSX file with a column 'folder' (or 'map', 'path'), and optionally 'pseudonym' "
    "(or 'pseudoID', 'name'). Its folders are added too, with their pseudonyms.",
)
@check_dicom_option
@pass_anon_context
def add_study_folders(context: AnonCommandContext, paths: Tuple[str, ...], input_file: Optional[Path], check_dicom: bool) -> None:
    """Add the DICOM files in each folder in PATHS to the active mapping.

    Each folder and its subfolders are searched for DICOM files, which are
    listed in a file selection (fileselection.txt) in the folder; a row
    'fileselection:<folder>/fileselection.txt' with a new pseudonym is added
    to the mapping, which is saved after each folder. PATHS may contain
    wildcards: 'patient*' matches patientA and patientB, '**/raw' matches
    raw folders at any depth. Put them in quotes so that the shell does not
    expand them.
    """
    from anonapi import mapping_actions
    from anonapi.inputfile import InputColumn, read_input_file

    unc_paths = context.settings.unc_paths
    folders: List[Tuple[Path, Optional[str]]] = [
        (folder, None) for folder in mapping_actions.expand_folder_patterns(paths, context.current_dir, unc_paths)
    ]
    if input_file is not None:
        table = read_input_file(context.current_dir / input_file, InputColumn.FOLDER)
        for row in table.rows:
            try:
                matched = mapping_actions.expand_folder_patterns([row.folder], context.current_dir, unc_paths)
            except UserInputError as error:
                raise UserInputError(f"{error} (input file '{input_file}', row {row.row_number})") from None
            folders.extend((folder, row.pseudonym) for folder in matched)
    if not folders:
        raise UserInputError("No folders given. Give folder paths, or an input file with --input-file.")

    given_pseudonyms = {Path(folder): pseudonym for folder, pseudonym in folders if pseudonym}
    mapping_file = active_mapping_file(context)
    resolver = mapping_actions.SourcePathResolver(mapping_file, context.current_dir, context.settings.unc_paths)
    click.echo(f"Adding {len(folders)} folders to mapping '{mapping_file.path}'")
    empty_folders = []
    added = 0
    root_reported = False
    with scan_progress(context) as (on_scan_start, on_progress):
        results = mapping_actions.add_study_folders(
            mapping_file, folders, resolver, check_dicom=check_dicom, on_scan_start=on_scan_start, on_progress=on_progress
        )
        for result in results:
            if resolver.root_was_set and not root_reported:
                _report_root(resolver.root_was_set)
                root_reported = True
            folder_label = _relative_label(result.folder, context.current_dir)
            if result.row is None:
                empty_folders.append(folder_label)
                click.echo(f"{folder_label}: {_count(result.files_found, 'file')}, none of them DICOM. Not added.")
            elif result.already_in_mapping:
                click.echo(f"{folder_label}: {_count(result.dicom_count, 'DICOM file')}. Updated its selection and kept the existing row {result.row.source}.")
                _warn_if_pseudonym_differs(result.row, given_pseudonyms.get(Path(result.folder)))
            else:
                added += 1
                click.echo(f"{folder_label}: {_count(result.dicom_count, 'DICOM file')}, added as {result.row.source} (pseudonym {result.row.pseudo_name}).")
    click.echo(f"Added {_count(added, 'folder')} to the mapping.")
    if empty_folders:
        raise UserInputError(
            f"{len(empty_folders)} folders contain no DICOM files and were not added: {', '.join(empty_folders)}. "
            f"Check the folder names, or use --no-check-dicom to choose files by name."
        )


def _count(number: int, noun: str) -> str:
    """Return ``'1 file'`` or ``'3 files'``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _warn_if_pseudonym_differs(row, given: Optional[str]) -> None:
    """Warn when an input file gives a row that is already in the mapping another pseudonym."""
    if given and given not in (row.pseudo_name, row.pseudo_id):
        click.echo(
            f"Warning: {row.source} keeps its pseudonym '{row.pseudo_name or row.pseudo_id}' from the mapping, "
            f"not '{given}'. To use '{given}', change the row with 'anon map edit'.",
            err=True,
        )


@map_group.command(name="add-accession-numbers")
@click.argument("accession_numbers", nargs=-1)
@click.option(
    "-f",
    "--input-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV or XLSX file with a column 'accession number' (or 'acc nr'), and optionally 'pseudonym' "
    "(or 'pseudoID', 'name'). Its accession numbers are added too, with their pseudonyms.",
)
@pass_anon_context
def add_accession_numbers(context: AnonCommandContext, accession_numbers: Tuple[str, ...], input_file: Optional[Path]) -> None:
    """Add studies from PACS, found by accession number, to the active mapping.

    Each gets a row 'accession_number:<number>' with a new pseudonym, or the
    pseudonym from the input file.
    """
    from anonapi.inputfile import InputColumn, read_input_file
    from anonapi.mapping_actions import add_accession_numbers as add_numbers

    numbers: List[Tuple[str, Optional[str]]] = [(number, None) for number in accession_numbers]
    if input_file is not None:
        table = read_input_file(context.current_dir / input_file, InputColumn.ACCESSION_NUMBER)
        numbers.extend((row.accession_number, row.pseudonym) for row in table.rows if row.accession_number)
    if not numbers:
        raise UserInputError("No accession numbers given. Give them as arguments, or an input file with --input-file.")
    mapping_file = active_mapping_file(context)
    result = add_numbers(mapping_file, numbers)
    for row in result.added:
        click.echo(f"Added {row.source} (pseudonym {row.pseudo_name})")
    given_pseudonyms = {f"accession_number:{number}": pseudonym for number, pseudonym in numbers if pseudonym}
    rows = {str(row.source): row for row in mapping_file.load().rows} if result.already_present else {}
    for source in result.already_present:
        click.echo(f"Skipped {source}: the mapping has it already")
        if str(source) in rows:
            _warn_if_pseudonym_differs(rows[str(source)], given_pseudonyms.get(str(source)))
    click.echo(f"Added {len(result.added)} accession numbers to mapping '{mapping_file.path}'.")


@map_group.command(name="add-selection")
@click.argument("selection", type=click.Path(path_type=Path))
@pass_anon_context
def add_selection(context: AnonCommandContext, selection: Path) -> None:
    """Add a file selection to the active mapping as a 'fileselection:' row.

    SELECTION is a file selection file, or a folder that contains fileselection.txt.
    """
    from anonapi.mapping_actions import SourcePathResolver, add_file_selection

    mapping_file = active_mapping_file(context)
    resolver = SourcePathResolver(mapping_file, context.current_dir, context.settings.unc_paths)
    result = add_file_selection(mapping_file, context.current_dir / selection, resolver)
    if resolver.root_was_set:
        _report_root(resolver.root_was_set)
    for row in result.added:
        click.echo(f"Added {row.source} (pseudonym {row.pseudo_name}) to mapping '{mapping_file.path}'.")
    for source in result.already_present:
        click.echo(f"Skipped {source}: mapping '{mapping_file.path}' has it already.")


def active_mapping_file(context: AnonCommandContext):
    """Return the active mapping file.

    :raises MappingError: if no mapping is active or the active one no longer exists, saying how to fix it
    """
    from anonapi.mapper import MAPPING_FILE_NAME, MappingFile

    path = context.settings.active_mapping_file
    if path is None:
        local = context.current_dir / MAPPING_FILE_NAME
        if local.is_file():
            raise MappingError(f"No active mapping. Run 'anon map activate' to use '{local}'.")
        raise MappingError("No active mapping. Create one in the project folder with 'anon map init'.")
    mapping_file = MappingFile(path)
    if not mapping_file.exists():
        raise MappingError(
            f"Active mapping '{path}' not found. Create a new one with 'anon map init', "
            f"or activate another with 'anon map activate PATH'."
        )
    return mapping_file


def _report_root(root: str) -> None:
    from anonapi.unc import is_unc_path

    click.echo(f"Set root_source_path to '{root}'.")
    if not is_unc_path(root):
        click.echo(
            "This is not a UNC path, which jobs need. Before creating jobs, set root_source_path to the "
            "folder's UNC path with 'anon map edit', or add the folder and its UNC path to unc_paths in the settings file."
        )


def _relative_label(folder: Path, current_dir: Path) -> str:
    try:
        return folder.relative_to(current_dir).as_posix() or "."
    except ValueError:
        return str(folder)
