"""``anon job``: show, reset and cancel jobs on the active server by id."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import click

from anonapi.bulk import BulkResult, run_bulk
from anonapi.cli.context import AnonCommandContext, format_error, pass_anon_context, report_on_stop
from anonapi.cli.options import echo_json, output_option, yes_option
from anonapi.exceptions import UserInputError
from anonapi.jobids import parse_job_ids
from anonapi.objects import RemoteAnonServer


# The confirmation prompt and the list of jobs not found show at most this
# many ids, so that they fit on a screen.
MAX_IDS_IN_PROMPT = 20


@click.group()
def job() -> None:
    """Show, reset and cancel single jobs."""


def job_ids_argument(function: Callable) -> Callable:
    return click.argument("job_ids", nargs=-1, required=True, metavar="IDS...")(function)


def parse_ids(values: Sequence[str]) -> List[str]:
    """Expand the IDS arguments into job ids.

    :raises UserInputError: if they are invalid, or hold no id at all (such as '' or ',')
    """
    ids = parse_job_ids(values)
    if not ids:
        raise UserInputError(
            f"No job ids in {' '.join(repr(value) for value in values)}. "
            "Give ids such as 12, ranges such as 5-12, or lists such as 1,4,7-9."
        )
    return ids


def shorten_ids(job_ids: Sequence[str]) -> str:
    """Return the ids comma-separated, the first MAX_IDS_IN_PROMPT and a count of the rest."""
    text = ", ".join(job_ids[:MAX_IDS_IN_PROMPT])
    if len(job_ids) > MAX_IDS_IN_PROMPT:
        text += f" and {len(job_ids) - MAX_IDS_IN_PROMPT} more"
    return text


def report_missing(job_ids: Sequence[str], found_ids: Sequence[str], server: RemoteAnonServer) -> bool:
    """Print an error naming the ids the server did not return, and return whether any was missing."""
    found = set(found_ids)
    missing = [job_id for job_id in job_ids if job_id not in found]
    if len(missing) == 1:
        click.echo(f"Error: job {missing[0]} not found on {server.name}. Check the id and the active server.", err=True)
    elif missing:
        click.echo(
            f"Error: {len(missing)} jobs not found on {server.name}: {shorten_ids(missing)}. "
            "Check the ids and the active server.",
            err=True,
        )
    return bool(missing)


def _is_unknown_job(error: Exception) -> bool:
    """Return whether the server rejected the call because the job id does not exist (its recorded 400 body)."""
    from anonapi.exceptions import APIError

    return isinstance(error, APIError) and "does not exist" in str(error.errors.get("job_id", ""))


@job.command()
@job_ids_argument
@output_option("table", "json")
@click.pass_context
@pass_anon_context
def info(context: AnonCommandContext, click_context: click.Context, job_ids: List[str], output: str) -> None:
    """Show every field of the jobs IDS.

    IDS can be given as 1 2 3, as ranges such as 5-12, or as comma lists such as 1,4,7-9.
    Exits with status 1 if any job is not found.
    """
    from anonapi.responses import format_job_info

    ids = parse_ids(job_ids)
    active = context.get_active_server()
    infos = context.get_client_tool().get_job_info_list(active, ids, get_extended_info=True)

    if output == "json":
        echo_json(infos.to_dicts())
    else:
        click.echo("\n\n".join(format_job_info(item, active.name) for item in infos))
    if report_missing(ids, [str(item.job_id) for item in infos], active):
        click_context.exit(1)


@job.command(name="list")
@job_ids_argument
@output_option("table", "json")
@click.pass_context
@pass_anon_context
def list_jobs(context: AnonCommandContext, click_context: click.Context, job_ids: List[str], output: str) -> None:
    """List the jobs IDS as a table, one row per job.

    IDS can be given as 1 2 3, as ranges such as 5-12, or as comma lists such as 1,4,7-9.
    Exits with status 1 if any job is not found.
    """
    ids = parse_ids(job_ids)
    active = context.get_active_server()
    infos = context.get_client_tool().get_job_info_list(active, ids)

    if output == "json":
        echo_json(infos.to_dicts())
    else:
        click.echo(f"Info for {len(infos)} jobs on {active}:")
        click.echo(infos.as_table_string())
    if report_missing(ids, [str(item.job_id) for item in infos], active):
        click_context.exit(1)


def change_jobs(
    context: AnonCommandContext,
    job_ids: Sequence[str],
    action: str,
    done_message: str,
    change: Callable[[RemoteAnonServer, List[str], int], BulkResult],
    yes: bool,
) -> None:
    """Confirm, then change the jobs with ``change(server, ids, max_concurrent_requests)``.

    A failed job does not stop the others.

    :param action: the change the prompt names, such as "reset"
    :param done_message: printed per changed job, such as "Reset job"
    """
    ids = parse_ids(job_ids)
    active = context.get_active_server()
    if not yes:
        click.confirm(f"This will {action} {len(ids)} jobs on {active.name}: {shorten_ids(ids)}. Continue?", abort=True)

    def report_jobs(result: BulkResult) -> None:
        _report_jobs(result, ids, done_message, active)

    with report_on_stop(report_jobs, len(ids), "Changed", active.name):
        result = change(active, ids, context.settings.max_concurrent_requests)
    report_jobs(result)
    if len(ids) > 1:
        click.echo(result.summary())
    if not result.all_succeeded:
        click.get_current_context().exit(1)


def _report_jobs(result: BulkResult, ids: Sequence[str], done_message: str, active: RemoteAnonServer) -> None:
    """Print a line per job that was changed or failed; jobs not reached are left out."""
    for job_id in ids:
        if job_id in result.succeeded:
            click.echo(f"{done_message} {job_id}.")
        elif job_id not in result.failed:
            continue
        elif _is_unknown_job(result.failed[job_id]):
            click.echo(f"Error: job {job_id} not found on {active.name}. Check the id and the active server.", err=True)
        else:
            click.echo(f"Error: job {job_id}: {format_error(result.failed[job_id])}", err=True)


@job.command()
@job_ids_argument
@yes_option
@pass_anon_context
def reset(context: AnonCommandContext, job_ids: List[str], yes: bool) -> None:
    """Reset the jobs IDS so the server processes them again.

    Each job becomes ACTIVE with its file counts and error cleared.
    IDS can be given as 1 2 3, as ranges such as 5-12, or as comma lists such as 1,4,7-9.
    Exits with status 1 if any job failed.
    """
    tool = context.get_client_tool()
    change_jobs(context, job_ids, "reset", "Reset job", tool.reset_jobs, yes)


@job.command()
@job_ids_argument
@yes_option
@pass_anon_context
def cancel(context: AnonCommandContext, job_ids: List[str], yes: bool) -> None:
    """Cancel the jobs IDS: their status becomes INACTIVE.

    IDS can be given as 1 2 3, as ranges such as 5-12, or as comma lists such as 1,4,7-9.
    Exits with status 1 if any job failed.
    """
    tool = context.get_client_tool()
    change_jobs(context, job_ids, "cancel", "Cancelled job", tool.cancel_jobs, yes)


@job.command(name="set-opt-out-ignore")
@click.argument("job_ids", nargs=-1, metavar="IDS...")
@click.argument("reason", required=False, metavar="REASON")
@yes_option
@pass_anon_context
def set_opt_out_ignore(context: AnonCommandContext, job_ids: List[str], reason: Optional[str], yes: bool) -> None:
    """Let the jobs IDS go ahead although the patient opted out.

    REASON is stored with each job. Give the consent that allows it,
    for example "Consent form 2023-114 signed".
    IDS can be given as 1 2 3, as ranges such as 5-12, or as comma lists such as 1,4,7-9.
    Exits with status 1 if any job failed.
    """
    if not job_ids:
        # With one argument click fills REASON first, so the argument may be meant as an id.
        raise click.UsageError(
            "Give the job ids and then the reason, for example: anon job set-opt-out-ignore 12 'Consent form signed'."
        )
    if not reason.strip():
        raise UserInputError("The reason is empty. Give the consent that allows ignoring the opt-out.")
    tool = context.get_client_tool()
    change_jobs(
        context,
        job_ids,
        f"ignore the opt-out (reason: {reason}) for",
        "Set opt-out ignore for job",
        lambda server, ids, max_workers: run_bulk(
            lambda job_id: tool.set_opt_out_ignore(server, job_id, reason), ids, max_workers
        ),
        yes,
    )
