"""``anon create``: create jobs from the mapping, and the defaults new jobs get."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

import click

from anonapi.cli.context import AnonCommandContext, pass_anon_context
from anonapi.cli.options import yes_option
from anonapi.exceptions import InvalidMappingError, JobCreationError, MappingError, UserInputError

if TYPE_CHECKING:
    from anonapi.creation import CreationPlan, CreationResult, JobRequest

# Destinations listed in the confirmation question before the rest are counted.
MAX_DESTINATIONS_SHOWN = 5


@click.group(name="create")
def create() -> None:
    """Create jobs from the mapping, and set the defaults new jobs get."""


@create.command("from-mapping", short_help="Create jobs from the active mapping.")
@click.option("--dry-run", is_flag=True, help="Check the mapping and show what would be sent, but send nothing.")
@click.option(
    "-f",
    "--filter",
    "pseudonyms",
    multiple=True,
    metavar="PSEUDONYM",
    help="Create jobs only for rows with this pseudo_id or pseudo_name. Repeat for more rows.",
)
@click.option(
    "--check-dicom/--no-check-dicom",
    default=True,
    show_default=True,
    help="Read the header of every file of folder: and fileselection: sources to check that it is DICOM. "
    "Without it, file names are checked.",
)
@yes_option
@pass_anon_context
def from_mapping(
    context: AnonCommandContext, dry_run: bool, pseudonyms: Sequence[str], check_dicom: bool, yes: bool
) -> None:
    """Create a job for each row of the active mapping, and save the job ids in this folder's batch.

    Without an active mapping, the mapping anon_mapping.csv in this folder
    is used. Every row is checked first. If any row has a problem, all
    problems are listed and no job is created. The jobs go to the active
    server.

    Creation can be interrupted and run again: rows that already have a job
    are skipped. Each job's description ends with a marker such as
    [anonapi:3f2a9c1e-17] by which a later run finds jobs that an
    interrupted run created but could not record. The file .anoncreated in
    this folder records which row made which job. Delete it to create jobs
    for the same rows again.
    """
    from anonapi.jobcreator import JobCreator

    server = context.get_active_server()
    plan = _plan(context, pseudonyms, check_dicom, server=server)
    for notice in plan.notices:
        click.echo(f"Note: {notice}", err=True)

    if dry_run:
        _show_dry_run(plan, server)
        return

    settings = context.settings
    with JobCreator(context.get_client_tool(), server, context.current_dir, settings.max_concurrent_requests) as creator:
        creator.refresh(plan)
        for request, job_id in creator.look_up_earlier_attempts(plan):
            click.echo(f"Found job {job_id} for {request.label}, created by an earlier run that was interrupted.")
        _show_skipped(plan)
        if not plan.requests:
            click.echo("Nothing to create: every row already has a job.")
            return
        click.echo(f"Mapping: '{plan.mapping_path}'")
        if not yes and not click.confirm(_confirmation_question(plan, server), default=False):
            click.echo("Cancelled. No job was created.")
            return
        result = _create_with_progress(creator, plan)

    _report(result, len(plan.requests), context.current_dir)


def _plan(context: AnonCommandContext, pseudonyms: Sequence[str], check_dicom: bool, server) -> "CreationPlan":
    from anonapi.creation import JobSettings, plan_creation
    from anonapi.mapper import MappingFile

    settings = context.settings
    mapping_path = _mapping_path(context)
    mapping = MappingFile(mapping_path).load()
    defaults = settings.job_defaults
    try:
        return plan_creation(
            mapping,
            mapping_path=mapping_path,
            folder=context.current_dir,
            server=server,
            defaults=JobSettings(defaults.project_name, defaults.destination_path),
            unc_map=settings.unc_paths,
            pseudonym_filter=pseudonyms,
            check_dicom=check_dicom,
            max_workers=settings.max_concurrent_requests,
        )
    except InvalidMappingError as error:
        count = len(error.problems)
        click.echo(f"Found {count} problem{'s' if count != 1 else ''} in mapping '{mapping_path}':", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        raise MappingError(
            f"No job was created because of the {count} problem{'s' if count != 1 else ''} above. "
            "Fix them in the mapping (anon map edit) and run the command again."
        ) from error


def _mapping_path(context: AnonCommandContext) -> Path:
    """Return the active mapping file, or the mapping in the current folder if none is active."""
    from anonapi.mapper import MAPPING_FILE_NAME

    active = context.settings.active_mapping_file
    if active is not None:
        return Path(active)
    path = context.current_dir / MAPPING_FILE_NAME
    if not path.exists():
        raise MappingError(
            f"No mapping found: no mapping is active and '{path}' does not exist. "
            "Create one with `anon map init`, or activate one with `anon map activate`."
        )
    return path


def _show_dry_run(plan: "CreationPlan", server) -> None:
    _show_skipped(plan)
    if plan.rows_with_earlier_attempt:
        click.echo(
            f"{len(plan.rows_with_earlier_attempt)} rows were sent by an earlier run that was interrupted. "
            "A real run first looks on the server for their jobs."
        )
    click.echo(
        f"Dry run: nothing is sent. These {len(plan.requests)} jobs would be created on "
        f"{server.name} ({server.url}) from mapping '{plan.mapping_path}':"
    )
    for request in plan.requests:
        click.echo("")
        click.echo(f"{request.label}:")
        for name, value in request.create_job_arguments().items():
            click.echo(f"  {name:<22} {value}")
    if plan.requests:
        click.echo("")
        click.echo("Each description gets a marker [anonapi:<token>] so that an interrupted run can be resumed.")


def _show_skipped(plan: "CreationPlan") -> None:
    if plan.already_created:
        click.echo(
            f"Skipping {len(plan.already_created)} rows that already have a job "
            f"(jobs {_format_ids(job_id for _, job_id in plan.already_created)})."
        )


def _confirmation_question(plan: "CreationPlan", server) -> str:
    projects = ", ".join(f"'{project}'" for project in plan.projects)
    destinations = plan.destinations
    listed = ", ".join(f"'{destination}'" for destination in destinations[:MAX_DESTINATIONS_SHOWN])
    if len(destinations) > MAX_DESTINATIONS_SHOWN:
        listed += f" and {len(destinations) - MAX_DESTINATIONS_SHOWN} more"
    count = len(plan.requests)
    return (
        f"This will create {count} job{'s' if count != 1 else ''} on {server.name} ({server.url}), "
        f"for project {projects}, writing data to {listed}. Continue?"
    )


def _create_with_progress(creator, plan: "CreationPlan") -> "CreationResult":
    # Lines are written without click.echo, which flushes after every line and so
    # makes a system call per job.
    stdout = sys.stdout

    # No bar when stderr is not a terminal, as tqdm's disable=None decides.
    # Deciding before the import saves the 40 ms that importing tqdm takes.
    if not sys.stderr.isatty():

        def write_line(request: "JobRequest", job_id: Optional[str], error) -> None:
            stdout.write(_result_line(request, job_id, error) + "\n")

        return creator.create(plan, on_result=write_line)

    from tqdm import tqdm

    with tqdm(total=len(plan.requests), unit="job", file=sys.stderr, desc="Creating jobs") as bar:

        def write_line_and_update(request: "JobRequest", job_id: Optional[str], error) -> None:
            bar.write(_result_line(request, job_id, error), file=stdout)
            bar.update(1)

        return creator.create(plan, on_result=write_line_and_update)


def _result_line(request: "JobRequest", job_id: Optional[str], error) -> str:
    if job_id is not None:
        return f"Created job {job_id} for {request.label}"
    return f"Failed to create the job for {request.label}: {error}"


def _report(result: "CreationResult", requested: int, folder: Path) -> None:
    job_ids = result.job_ids
    if job_ids:
        click.echo(f"Created {len(job_ids)} job{'' if len(job_ids) == 1 else 's'}: {_format_ids(job_ids)}")
        click.echo(f"Saved the job ids in the batch in '{folder}'. Follow them with `anon batch status`.")
    if result.batch_error is not None:
        click.echo(
            f"Warning: saving job ids in the batch failed ({result.batch_error}). They are recorded in "
            "'.anoncreated'; run `anon create from-mapping` again to add them to the batch.",
            err=True,
        )
    if result.interrupted:
        click.echo(
            f"Interrupted after {len(job_ids)} of {requested} jobs. Run the command again to create the rest.",
            err=True,
        )
        sys.exit(130)
    if result.complete:
        return

    problems: List[str] = []
    for request, error in result.failed:
        problems.append(f"the server rejected the job for {request.label}: {error}")
    for request, error in result.unknown:
        problems.append(
            f"no response for the job of {request.label} ({error}), so the next run first looks for it on the server"
        )
    not_sent = f" {len(result.not_sent)} rows were not sent." if result.not_sent else ""
    raise JobCreationError(
        f"Created {len(job_ids)} of {requested} jobs, then stopped: {'; '.join(problems)}.{not_sent} "
        "Fix the problem and run `anon create from-mapping` again; rows that have a job are skipped."
    )


def _format_ids(job_ids) -> str:
    """Return ids as a short list with ranges: ``1-4, 7, 9-10``."""
    numbers = sorted({int(job_id) for job_id in job_ids})
    parts = []
    start = previous = None
    for number in numbers + [None]:
        if start is not None and number is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    return ", ".join(parts)


# --- Defaults ---------------------------------------------------------------------


@create.command("set-defaults", short_help="Set the project and destination for new jobs.")
@click.option("--project", help="Project new mappings get, for example Wetenschap-Algemeen.")
@click.option(
    "--destination-path",
    help="UNC path that new mappings write anonymized data to, for example \\\\server\\share\\output.",
)
@pass_anon_context
def set_defaults(context: AnonCommandContext, project: Optional[str], destination_path: Optional[str]) -> None:
    """Set the project and destination path that new mappings and jobs get.

    Without options, prompts for both, with the current values in brackets.
    With --project or --destination-path, sets only those, without prompts.
    """
    from anonapi.creation import validate_destination_path, validate_project

    defaults = context.settings.job_defaults
    if project is None and destination_path is None:
        click.echo("Set the defaults for new jobs. Press Enter to keep the value in brackets.")
        project = click.prompt("Project", default=defaults.project_name, value_proc=_prompt_check(validate_project))
        destination_path = click.prompt(
            "Destination path (UNC, \\\\server\\share\\folder)",
            default=defaults.destination_path,
            value_proc=_prompt_check(validate_destination_path),
        )
    if project is not None:
        defaults.project_name = validate_project(project)
    if destination_path is not None:
        defaults.destination_path = validate_destination_path(destination_path)
    context.save_settings()
    click.echo(f"Saved the defaults in '{context.settings_file.path}'.")
    _echo_defaults(context)


def _prompt_check(validate):
    """Wrap a validator so that click prompts again after an invalid value."""

    def check(value: str) -> str:
        try:
            return validate(value)
        except UserInputError as error:
            raise click.UsageError(str(error)) from error

    return check


@create.command("show-defaults", short_help="Show the project and destination for new jobs.")
@pass_anon_context
def show_defaults(context: AnonCommandContext) -> None:
    """Show the project and destination path that new mappings and jobs get."""
    _echo_defaults(context)


def _echo_defaults(context: AnonCommandContext) -> None:
    defaults = context.settings.job_defaults
    click.echo("Defaults for new jobs:")
    click.echo(f"  project           {defaults.project_name}   (anonymize according to this project)")
    click.echo(f"  destination_path  {defaults.destination_path}   (write anonymized data to this UNC path)")
    for name, value in defaults.other_parameters.items():
        click.echo(f"  {name:<17} {value}")
