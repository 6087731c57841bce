"""``anon batch``: work with the batch of jobs kept in the current folder."""

from __future__ import annotations

import csv
import io
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import click

from anonapi.batch import (
    NOT_FOUND,
    UNFINISHED_STATUSES,
    BatchFolder,
    BatchStatus,
    ErrorReport,
    JobBatch,
    cancel_jobs,
    get_batch_status,
    get_error_report,
    reset_jobs,
    watch_batch,
)
from anonapi.bulk import DEFAULT_MAX_CONCURRENT_REQUESTS, BulkResult
from anonapi.cli.context import AnonCommandContext, pass_anon_context, report_on_stop
from anonapi.cli.options import echo_json, output_option, yes_option
from anonapi.jobids import parse_job_ids
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobInfo, JobInfoColumns, JobStatus, TableColumn

# Bulk changes of fewer jobs than this show no progress bar.
PROGRESS_BAR_MIN_JOBS = 5

# Exit code of `anon batch watch` when --timeout ran out before the batch finished.
EXIT_TIMEOUT = 3


@click.group()
def batch() -> None:
    """Work with the batch of jobs in this folder.

    A batch is a list of job ids on one server, kept in the file .anonbatch
    in the current folder. `anon create from-mapping` makes one, and so do
    `anon batch init` and `anon batch add` by hand. Commands that talk to a
    server use the batch's own server, which need not be the active one.
    """


def _folder(context: AnonCommandContext) -> BatchFolder:
    return BatchFolder(context.current_dir)


def _load(context: AnonCommandContext) -> JobBatch:
    return _folder(context).load()


def _max_workers(context: AnonCommandContext) -> int:
    return int(getattr(context.settings, "max_concurrent_requests", None) or DEFAULT_MAX_CONCURRENT_REQUESTS)


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _echo_csv(header: Sequence[str], rows: List[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    click.echo(buffer.getvalue(), nl=False)


# --- The batch file -------------------------------------------------------------


@batch.command()
@pass_anon_context
def init(context: AnonCommandContext) -> None:
    """Save an empty batch for the active server in this folder."""
    server = context.get_active_server()
    _folder(context).create_batch(server)
    click.echo(f"Created an empty batch for {server} in {context.current_dir}")


@batch.command()
@output_option("table", "json", "csv")
@pass_anon_context
def info(context: AnonCommandContext, output: str) -> None:
    """Show the job ids and the server of this folder's batch.

    The table format is the YAML of the batch file, and csv has one row per job id.
    """
    job_batch = _load(context)
    if output == "json":
        echo_json(job_batch.to_dict())
    elif output == "csv":
        rows = [[job_id, job_batch.server.name, job_batch.server.url] for job_id in job_batch.job_ids]
        _echo_csv(["job_id", "server_name", "server_url"], rows)
    else:
        click.echo(job_batch.to_string(), nl=False)


@batch.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="IDS...")
@pass_anon_context
def add(context: AnonCommandContext, job_ids: Sequence[str]) -> None:
    """Add job ids to the batch.

    IDS are single ids (1 2 3), ranges (5-12) or comma lists (1,4,7-9).
    """
    ids = parse_job_ids(job_ids)
    change = _folder(context).change_job_ids(add=ids)
    skipped = [job_id for job_id in ids if job_id not in change.added]
    click.echo(f"Added {_jobs(len(change.added))} to the batch on {change.batch.server}. It now has {_jobs(len(change.batch))}.")
    if skipped:
        click.echo(f"Already in the batch, so skipped: {_short_list(skipped)}")


@batch.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="IDS...")
@pass_anon_context
def remove(context: AnonCommandContext, job_ids: Sequence[str]) -> None:
    """Remove job ids from the batch.

    IDS are single ids (1 2 3), ranges (5-12) or comma lists (1,4,7-9). The jobs themselves stay on the server as they are.
    """
    ids = parse_job_ids(job_ids)
    change = _folder(context).change_job_ids(remove=ids)
    click.echo(f"Removed {_jobs(len(change.removed))} from the batch. It now has {_jobs(len(change.batch))}.")
    if change.not_in_batch:
        click.echo(f"Not in the batch, so skipped: {_short_list(change.not_in_batch)}")


def _short_list(job_ids: Sequence[str], limit: int = 20) -> str:
    listed = ", ".join(job_ids[:limit])
    return listed if len(job_ids) <= limit else f"{listed} and {len(job_ids) - limit} more"


@batch.command()
@yes_option
@pass_anon_context
def delete(context: AnonCommandContext, yes: bool) -> None:
    """Delete the batch file of this folder. The jobs stay on the server as they are."""
    folder = _folder(context)
    job_batch = folder.load()
    if job_batch.job_ids and not yes:
        click.confirm(
            f"Delete the batch of {_jobs(len(job_batch))} on {job_batch.server} from {context.current_dir}?",
            abort=True,
        )
    folder.delete_batch()
    click.echo(f"Deleted the batch in {context.current_dir}")


# --- Status ---------------------------------------------------------------------


@batch.command()
@click.option(
    "--patient-name",
    is_flag=True,
    help="Add the column anon_name with each job's pseudonym. Fetches extended job info, which is slower.",
)
@output_option("table", "json", "csv")
@pass_anon_context
def status(context: AnonCommandContext, patient_name: bool, output: str) -> None:
    """Show the status of every job in the batch.

    A count and percentage per status follow the table. Ids the server has no job for are shown with status NOT_FOUND.
    """
    job_batch = _load(context)
    report = get_batch_status(context.get_client_tool(), job_batch, extended=patient_name)
    columns = list(JobInfoColumns.DEFAULT)
    if patient_name:
        columns.append(JobInfoColumns.PSEUDO_NAME)

    if output == "json":
        echo_json(_status_as_dict(report))
    elif output == "csv":
        rows = [[getattr(info, column.attribute) for column in columns] for info in report.rows()]
        _echo_csv([column.attribute for column in columns], rows)
    else:
        click.echo(f"Job info for {_jobs(len(job_batch))} on {job_batch.server}:")
        if job_batch.job_ids:
            click.echo(format_job_table(report.rows(), columns))
            click.echo("")
            click.echo(format_summary(report))


def format_job_table(job_infos: Sequence[JobInfo], columns: Sequence[TableColumn]) -> str:
    """Render jobs as a plain-text table, the same text as tabulate's "simple" format.

    tabulate guesses a type for every cell, which takes most of a second for
    10,000 jobs. These columns hold plain text, so this only pads it.
    """
    headers = [column.header for column in columns]
    rows = [
        ["" if getattr(info, column.attribute) is None else str(getattr(info, column.attribute)) for column in columns]
        for info in job_infos
    ]
    # tabulate makes each column at least two characters wider than its header.
    widths = [max([len(header) + 2] + [len(row[index]) for row in rows]) for index, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    lines = [line(headers), line(["-" * width for width in widths])]
    lines.extend(line(row) for row in rows)
    return "\n".join(lines)


def format_summary(report: BatchStatus) -> str:
    """Render the count and percentage of jobs per status as a small table."""
    from tabulate import tabulate

    rows = [[status_name, count, f"{percentage:.1f}%"] for status_name, count, percentage in report.summary()]
    rows.append(["total", len(set(report.job_ids)), "100.0%"])
    return tabulate(rows, headers=["status", "jobs", "percent"], colalign=("left", "right", "right"))


def _status_as_dict(report: BatchStatus) -> Dict[str, Any]:
    return {
        "server": report.server.to_dict(),
        "jobs": [info.to_dict() for info in report.rows()],
        "summary": {
            status_name: {"jobs": count, "percent": round(percentage, 2)}
            for status_name, count, percentage in report.summary()
        },
    }


# --- Changing jobs on the server --------------------------------------------------


@batch.command()
@yes_option
@pass_anon_context
def reset(context: AnonCommandContext, yes: bool) -> None:
    """Reset every job in the batch.

    A reset job gets status ACTIVE with its error and file counts cleared,
    so that the server processes it again.
    """
    job_batch = _load(context)
    _change_jobs(context, job_batch, job_batch.job_ids, "reset", yes)


@batch.command("reset-error")
@yes_option
@pass_anon_context
def reset_error(context: AnonCommandContext, yes: bool) -> None:
    """Reset the jobs in the batch that have status ERROR."""
    job_batch = _load(context)
    job_ids = _ids_with_status(context, job_batch, JobStatus.ERROR)
    _change_jobs(context, job_batch, job_ids, "reset", yes, f"with status {JobStatus.ERROR}")


@batch.command()
@yes_option
@pass_anon_context
def cancel(context: AnonCommandContext, yes: bool) -> None:
    """Cancel every job in the batch.

    A cancelled job gets status INACTIVE and nothing more happens to it.
    """
    job_batch = _load(context)
    _change_jobs(context, job_batch, job_batch.job_ids, "cancel", yes)


@batch.command("cancel-active")
@yes_option
@pass_anon_context
def cancel_active(context: AnonCommandContext, yes: bool) -> None:
    """Cancel the ACTIVE jobs of the batch.

    ACTIVE jobs wait to be processed. Jobs in any other status stay as they are.
    """
    job_batch = _load(context)
    job_ids = _ids_with_status(context, job_batch, JobStatus.ACTIVE)
    _change_jobs(context, job_batch, job_ids, "cancel", yes, f"with status {JobStatus.ACTIVE}")


def _ids_with_status(context: AnonCommandContext, job_batch: JobBatch, job_status: str) -> List[str]:
    return get_batch_status(context.get_client_tool(), job_batch).ids_with_status(job_status)


# Verb -> (library function, past tense, -ing form for the progress bar).
_CHANGES: Dict[str, tuple] = {
    "reset": (reset_jobs, "Reset", "Resetting"),
    "cancel": (cancel_jobs, "Cancelled", "Cancelling"),
}


def _change_jobs(
    context: AnonCommandContext,
    job_batch: JobBatch,
    job_ids: List[str],
    verb: str,
    yes: bool,
    status_filter: str = "",
) -> None:
    """Confirm, then reset or cancel ``job_ids`` on the batch's server with a progress bar, and report."""
    server = job_batch.server
    operation, past_tense, progressive = _CHANGES[verb]
    selection = f" {status_filter}" if status_filter else ""
    if not job_ids:
        click.echo(f"No jobs{selection} in the batch on {server}, so nothing to {verb}.")
        return
    if not yes:
        click.confirm(f"{verb.capitalize()} {_jobs(len(job_ids))}{selection} on {server}?", abort=True)

    tool = context.get_client_tool()
    with report_on_stop(_report_failed_jobs, len(job_ids), past_tense, str(server)):
        with _BulkProgress(len(job_ids), progressive) as on_done:
            result = operation(tool, server, job_ids, max_workers=_max_workers(context), on_done=on_done)
    _report_bulk_result(result, past_tense, server)


class _BulkProgress:
    """A tqdm bar on stderr for bulk changes of more than a few jobs, updated by run_bulk's ``on_done``."""

    def __init__(self, total: int, description: str):
        self._bar = None
        # No bar when stderr is not a terminal, as tqdm's disable=None decides.
        # Deciding before the import saves the 25 ms that importing tqdm takes.
        if total >= PROGRESS_BAR_MIN_JOBS and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit="job", file=sys.stderr)

    def __enter__(self) -> Callable[[str, Optional[Exception]], None]:
        return self._on_done

    def _on_done(self, job_id: str, error: Optional[Exception]) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def __exit__(self, *exc_info: Any) -> None:
        if self._bar is not None:
            self._bar.close()


def _report_failed_jobs(result: BulkResult) -> None:
    for job_id in sorted(result.failed, key=int):
        click.echo(f"Job {job_id} failed: {result.failed[job_id]}")


def _report_bulk_result(result: BulkResult, past_tense: str, server: RemoteAnonServer) -> None:
    _report_failed_jobs(result)
    total = len(result.succeeded) + len(result.failed)
    click.echo(f"{past_tense} {len(result.succeeded)} of {_jobs(total)} on {server}, {len(result.failed)} failed.")
    if result.failed:
        click.get_current_context().exit(1)


# --- Errors ---------------------------------------------------------------------


@batch.command("show-error")
@output_option("table", "json", "csv")
@pass_anon_context
def show_error(context: AnonCommandContext, output: str) -> None:
    """Show the errors of failed jobs, with what to do.

    Failed jobs are grouped by kind of error, each job with its full error.
    Jobs that have been UPLOADED for more than 30 minutes since they were
    created are listed too, because they are usually stuck in quarantine.
    """
    job_batch = _load(context)
    report = get_error_report(context.get_client_tool(), job_batch)
    if output == "json":
        echo_json(_error_report_as_dict(report))
    elif output == "csv":
        rows = [
            [info.job_id, info.status, group.kind.key, _source_of(info), info.error]
            for group in report.groups
            for info in group.job_infos
        ]
        _echo_csv(["job_id", "status", "kind", "source", "error"], rows)
    else:
        click.echo(format_error_report(report))


def format_error_report(report: ErrorReport) -> str:
    """Render the failed jobs group by group: title, advice, then each job's source and full error."""
    server = report.status.server
    total = len(report.status.job_ids)
    if not report.groups:
        return f"None of the {_jobs(total)} in the batch on {server} failed."

    lines = [f"{report.job_count} of {_jobs(total)} in the batch on {server} failed or are stuck.", ""]
    for group in report.groups:
        lines.append(f"{group.kind.title}: {_jobs(len(group.job_infos))} ({_short_list(group.job_ids)})")
        lines.append(f"What to do: {group.kind.advice}")
        lines.append("")
        for info in group.job_infos:
            source = _source_of(info)
            lines.append(f"  job {info.job_id} ({info.status}{', source ' + source if source else ''}):")
            error = str(info.error or "").strip() or "(no error message)"
            lines.extend(f"    {line}" for line in error.splitlines())
            lines.append("")
    return "\n".join(lines).rstrip("\n")


def _source_of(info: Any) -> str:
    return str(getattr(info, "source_instance_id", None) or getattr(info, "source_path", None) or "")


def _error_report_as_dict(report: ErrorReport) -> Dict[str, Any]:
    return {
        "server": report.status.server.to_dict(),
        "job_count": len(report.status.job_ids),
        "groups": [
            {
                "kind": group.kind.key,
                "title": group.kind.title,
                "advice": group.kind.advice,
                "jobs": [info.to_dict() for info in group.job_infos],
            }
            for group in report.groups
        ],
    }


# --- Waiting ----------------------------------------------------------------------


@batch.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between two status requests.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop waiting after this many seconds (default: wait until the batch has finished).",
)
@pass_anon_context
def watch(context: AnonCommandContext, interval: float, timeout: Optional[float]) -> None:
    """Wait until the batch has finished.

    Fetches the status every --interval seconds until no job is ACTIVE or
    UPLOADED, with progress bars of jobs and files on stderr.
    Exit code 0 when every job is DONE, 1 when the batch finished with jobs
    in another status (ERROR, INACTIVE, NOT_FOUND), and 3 when --timeout ran
    out first.
    """
    job_batch = _load(context)
    click.echo(f"Watching {_jobs(len(job_batch))} on {job_batch.server}", err=True)
    with _WatchProgress(len(job_batch)) as on_update:
        result = watch_batch(context.get_client_tool(), job_batch, interval=interval, timeout=timeout, on_update=on_update)

    click.echo(format_summary(result.status))
    unfinished = result.status.ids_with_status(*UNFINISHED_STATUSES)
    not_done = [job_id for job_id in job_batch.job_ids if result.status.status_of(job_id) != JobStatus.DONE]
    if result.timed_out:
        click.echo(f"Timed out after {timeout:g} s: {_jobs(len(unfinished))} still ACTIVE or UPLOADED.")
        click.get_current_context().exit(EXIT_TIMEOUT)
    if not_done:
        failed = [job_id for job_id in not_done if result.status.status_of(job_id) == JobStatus.ERROR]
        click.echo(
            f"The batch has finished, but {_jobs(len(not_done))} {'is' if len(not_done) == 1 else 'are'} "
            f"not DONE: {_short_list(not_done)}."
            + (" See `anon batch show-error`." if failed else "")
        )
        click.get_current_context().exit(1)
    click.echo(f"All {_jobs(len(job_batch))} are DONE.")


class _WatchProgress:
    """A tqdm bar on stderr of the jobs finished, with the files processed and downloaded after it."""

    def __init__(self, total_jobs: int):
        from tqdm import tqdm

        self._bar = tqdm(total=total_jobs, desc="jobs finished", unit="job", file=sys.stderr, disable=None)

    def __enter__(self) -> Callable[[BatchStatus], None]:
        return self._update

    def _update(self, report: BatchStatus) -> None:
        finished = len(report.job_ids) - len(report.ids_with_status(*UNFINISHED_STATUSES))
        self._bar.n = finished
        self._bar.set_postfix_str(
            f"files processed {report.files_processed()} of {report.files_downloaded()} downloaded", refresh=False
        )
        self._bar.refresh()

    def __exit__(self, *exc_info: Any) -> None:
        self._bar.close()
