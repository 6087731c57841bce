"""Batches: a set of job ids on one server, kept in the file ``.anonbatch`` of a folder.

A folder contains at most one batch, much as a folder contains at most one
git repository. The file is YAML in the format that anonapi 2.x wrote::

    job_ids:
    - '1'
    - '2'
    server:
      name: p01
      url: https://anonserver.example.org/p01

Every change to the file is a read-modify-write cycle under
``anonapi.fileio.file_lock`` that ends in an atomic replacement. So two
processes that add ids at the same time lose none, and a crash leaves either
the old file or the new one.

Besides the file itself this module contains what the batch commands do with
the server: fetch the status of every job, reset or cancel many jobs at
once, sort failed jobs by kind of error, and wait until a batch has finished.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from anonapi.bulk import DEFAULT_MAX_CONCURRENT_REQUESTS, BulkResult
from anonapi.exceptions import AnonAPIError, BatchError, NoBatchDefinedError
from anonapi.fileio import atomic_write_text, file_lock
from anonapi.jobids import is_job_id
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobInfo, JobStatus

logger = logging.getLogger(__name__)

BATCH_FILE_NAME = ".anonbatch"

# The status shown for ids in the batch that the server has no job for.
NOT_FOUND = "NOT_FOUND"

# Statuses of a job that the server is still working on.
UNFINISHED_STATUSES = (JobStatus.ACTIVE, JobStatus.UPLOADED)

# The C loader and dumper of PyYAML 6.0 (libyaml) read and write a batch of
# 10,000 ids in about 0.03 s, five to ten times faster than the pure Python ones.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class JobBatch:
    """Job ids on one server, in the order they were added."""

    def __init__(self, job_ids: Iterable[Any], server: RemoteAnonServer):
        self.job_ids: List[str] = [str(job_id).strip() for job_id in job_ids]
        self.server = server

    def to_dict(self) -> Dict[str, Any]:
        """Return the batch in the form the batch file stores: ids as strings."""
        return {"job_ids": list(self.job_ids), "server": self.server.to_dict()}

    @classmethod
    def from_dict(cls, dict_in: Any) -> "JobBatch":
        """Create a batch from the output of ``to_dict``.

        Ids written as numbers, as hand-edited files sometimes have them, are
        turned into strings, written as the server writes them ("007" becomes
        "7"), and an id given twice is kept once.

        :raises ValueError: if ``job_ids`` is not a list or the server is missing or incomplete
        """
        if not isinstance(dict_in, dict):
            raise ValueError(f"expected a mapping with 'job_ids' and 'server', got {type(dict_in).__name__}")
        job_ids = dict_in.get("job_ids") or []
        if not isinstance(job_ids, list):
            raise ValueError(f"'job_ids' must be a list, got {type(job_ids).__name__}")
        invalid = [job_id for job_id in job_ids if isinstance(job_id, bool) or not is_job_id(str(job_id).strip())]
        if invalid:
            raise ValueError(f"job ids must be whole numbers, got {invalid[0]!r}")
        job_ids = list(dict.fromkeys(str(int(str(job_id).strip())) for job_id in job_ids))
        if not isinstance(dict_in.get("server"), dict):
            raise ValueError("'server' with a 'name' and a 'url' is missing")
        return cls(job_ids=job_ids, server=RemoteAnonServer.from_dict(dict_in["server"]))

    def to_string(self) -> str:
        """Return the batch as the YAML text of the batch file."""
        return yaml.dump(self.to_dict(), Dumper=_YamlDumper, default_flow_style=False)

    def __len__(self) -> int:
        return len(self.job_ids)

    def __repr__(self) -> str:
        return f"JobBatch({len(self.job_ids)} job ids, server={self.server!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobBatch) and self.to_dict() == other.to_dict()


class BatchChange:
    """Outcome of adding or removing ids: the saved batch and which ids changed it."""

    def __init__(self, batch: JobBatch, added: List[str], removed: List[str], not_in_batch: List[str]):
        self.batch = batch
        self.added = added
        self.removed = removed
        self.not_in_batch = not_in_batch


class BatchFolder:
    """A folder that may hold a batch in its file ``.anonbatch``."""

    BATCH_FILE_NAME = BATCH_FILE_NAME

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def batch_file_path(self) -> Path:
        return self.path / BATCH_FILE_NAME

    def has_batch(self) -> bool:
        return self.batch_file_path.exists()

    def load(self) -> JobBatch:
        """Read the batch of this folder.

        :raises NoBatchDefinedError: if the folder has no batch file
        :raises BatchError: if the file cannot be read or is not a valid batch
        """
        path = self.batch_file_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise NoBatchDefinedError(
                f"No batch defined in '{self.path}'. Create one with `anon batch init`, "
                "or go to the folder that holds the batch."
            ) from error
        except (OSError, UnicodeDecodeError) as error:
            raise BatchError(f"Cannot read batch file '{path}': {error}. Check the file's permissions.") from error
        return self._parse(text)

    def _parse(self, text: str) -> JobBatch:
        path = self.batch_file_path
        try:
            content = yaml.load(text, Loader=_YamlLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise BatchError(
                f"Invalid batch file '{path}': not valid YAML{where}. "
                "Correct the file, or remove it with `anon batch delete` and start again."
            ) from error
        try:
            return JobBatch.from_dict(content)
        except ValueError as error:
            raise BatchError(
                f"Invalid batch file '{path}': {error}. "
                "Correct the file, or remove it with `anon batch delete` and start again."
            ) from error

    def save(self, batch: JobBatch) -> None:
        """Write the batch file atomically: a crash leaves the old file or the new one.

        This does not take the lock. Use ``add_job_ids`` or ``change_job_ids``
        to change a batch that another process may be changing too.
        """
        try:
            atomic_write_text(self.batch_file_path, batch.to_string())
        except OSError as error:
            raise BatchError(
                f"Cannot write batch file '{self.batch_file_path}': {error.strerror or error}. "
                "Check that the folder exists and is writable."
            ) from error

    def delete_batch(self) -> None:
        """Remove the batch file.

        :raises NoBatchDefinedError: if there is no batch file
        :raises BatchError: if the file cannot be removed
        """
        with self._lock():
            try:
                self.batch_file_path.unlink()
            except FileNotFoundError as error:
                raise NoBatchDefinedError(f"No batch defined in '{self.path}', so there is nothing to delete.") from error
            except OSError as error:
                raise BatchError(
                    f"Cannot delete batch file '{self.batch_file_path}': {error.strerror or error}. "
                    "Check the file's permissions."
                ) from error

    def create_batch(self, server: RemoteAnonServer) -> JobBatch:
        """Save an empty batch for ``server``.

        :raises BatchError: if the folder already has a batch
        """
        with self._lock():
            if self.has_batch():
                existing = self._describe_existing()
                raise BatchError(
                    f"A batch already exists in '{self.path}'{existing}. Work with that one, "
                    "or remove it first with `anon batch delete`."
                )
            batch = JobBatch(job_ids=[], server=server)
            self.save(batch)
            return batch

    def _describe_existing(self) -> str:
        try:
            batch = self.load()
        except BatchError:
            return ""
        return f" ({len(batch)} jobs on {batch.server})"

    def add_job_ids(self, job_ids: Sequence[str], server: RemoteAnonServer) -> JobBatch:
        """Add ids to the batch for ``server``, creating the batch if the folder has none.

        Ids already in the batch are skipped. Safe against other processes
        changing the batch at the same time.

        :raises BatchError: if the folder's batch belongs to another server
        """
        return self.change_job_ids(add=job_ids, server=server, create=True).batch

    def remove_job_ids(self, job_ids: Sequence[str]) -> JobBatch:
        """Remove ids from the batch, ignoring ids that are not in it.

        :raises NoBatchDefinedError: if the folder has no batch
        """
        return self.change_job_ids(remove=job_ids).batch

    def change_job_ids(
        self,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        server: Optional[RemoteAnonServer] = None,
        create: bool = False,
    ) -> BatchChange:
        """Add and remove ids in one locked read-modify-write cycle, and report what changed.

        ``server``, when given, must be the batch's server. With ``create``
        a missing batch is created for ``server``, and without it a missing batch
        raises NoBatchDefinedError.

        :raises NoBatchDefinedError: if there is no batch and ``create`` is false
        :raises BatchError: if the batch belongs to a server other than ``server``
        """
        if create and server is None:
            raise ValueError("create=True needs a server")
        with self._lock():
            if create and not self.has_batch():
                batch = JobBatch(job_ids=[], server=server)
            else:
                batch = self.load()
            if server is not None and not same_server(batch.server, server):
                raise BatchError(
                    f"The batch in '{self.path}' belongs to {batch.server}, not to {server}. "
                    "Use another folder for jobs on this server."
                )
            change = _apply_change(batch, [str(i) for i in add], [str(i) for i in remove])
            if change.added or change.removed or not self.has_batch():
                self.save(change.batch)
            return change

    def _lock(self):
        return file_lock(self.batch_file_path)


def _apply_change(batch: JobBatch, add: List[str], remove: List[str]) -> BatchChange:
    present = set(batch.job_ids)
    added = []
    for job_id in add:
        if job_id not in present:
            present.add(job_id)
            added.append(job_id)
    to_remove = set(remove)
    removed = [job_id for job_id in batch.job_ids + added if job_id in to_remove]
    not_in_batch = [job_id for job_id in dict.fromkeys(remove) if job_id not in present]
    job_ids = [job_id for job_id in batch.job_ids + added if job_id not in to_remove]
    return BatchChange(JobBatch(job_ids, batch.server), added, removed, not_in_batch)


def same_server(first: RemoteAnonServer, second: RemoteAnonServer) -> bool:
    """Return whether two servers have the same URL, ignoring a trailing slash and the case of the host."""
    return _normalize_url(first.url) == _normalize_url(second.url)


def _normalize_url(url: str) -> str:
    scheme, separator, rest = url.strip().rstrip("/").partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}{separator}{host.lower()}{slash}{path}"


# --- Status of the jobs on the server ----------------------------------------


class BatchStatus:
    """Status of every job in a batch, as fetched from the batch's server.

    ``job_infos`` maps id to JobInfo for the ids the server returned.
    ``not_found`` lists, in batch order, the ids it did not return.
    """

    def __init__(self, batch: JobBatch, job_infos: Dict[str, JobInfo]):
        self.batch = batch
        self.server = batch.server
        self.job_infos = job_infos
        self.not_found = [job_id for job_id in batch.job_ids if job_id not in job_infos]

    @property
    def job_ids(self) -> List[str]:
        return self.batch.job_ids

    def status_of(self, job_id: str) -> str:
        info = self.job_infos.get(job_id)
        return NOT_FOUND if info is None else str(info.status)

    def ids_with_status(self, *statuses: str) -> List[str]:
        """Return, in batch order, the ids whose status is one of ``statuses``."""
        return [job_id for job_id in self.job_ids if self.status_of(job_id) in statuses]

    def rows(self) -> List[JobInfo]:
        """Return one JobInfo per id, sorted by id. Ids the server did not return get status NOT_FOUND."""
        infos = [
            self.job_infos.get(job_id) or JobInfo(job_id=job_id, status=NOT_FOUND)
            for job_id in dict.fromkeys(self.job_ids)
        ]
        return sorted(infos, key=lambda info: info.job_id)

    def counts(self) -> Dict[str, int]:
        """Return the number of jobs per status, for the statuses that occur, in a fixed order."""
        counted: Dict[str, int] = {}
        for job_id in dict.fromkeys(self.job_ids):
            status = self.status_of(job_id)
            counted[status] = counted.get(status, 0) + 1
        order = list(JobStatus.ALL) + [NOT_FOUND]
        return dict(sorted(counted.items(), key=lambda item: _order_key(order, item[0])))

    def summary(self) -> List[Tuple[str, int, float]]:
        """Return ``(status, count, percentage)`` per status that occurs."""
        total = len(set(self.job_ids))
        return [(status, count, 100.0 * count / total) for status, count in self.counts().items()]

    @property
    def is_finished(self) -> bool:
        """Whether no job is ACTIVE or UPLOADED any more."""
        return not self.ids_with_status(*UNFINISHED_STATUSES)

    @property
    def all_done(self) -> bool:
        return all(self.status_of(job_id) == JobStatus.DONE for job_id in self.job_ids)

    def files_downloaded(self) -> int:
        return sum(info.files_downloaded or 0 for info in self.job_infos.values())

    def files_processed(self) -> int:
        return sum(info.files_processed or 0 for info in self.job_infos.values())


def _order_key(order: List[str], status: str) -> Tuple[int, str]:
    return (order.index(status) if status in order else len(order), status)


def get_batch_status(tool, batch: JobBatch, extended: bool = False) -> BatchStatus:
    """Fetch the status of every job in the batch from the batch's own server.

    ``tool`` is an ``anonapi.client.AnonClientTool``. ``extended`` fetches
    extended job info, which adds the pseudonyms and paths but costs the
    server more.

    :raises ServerError: if the server cannot be reached or rejects the request
    """
    if not batch.job_ids:
        return BatchStatus(batch, {})
    infos = tool.get_job_info_list(batch.server, batch.job_ids, get_extended_info=extended)
    return BatchStatus(batch, {str(info.job_id): info for info in infos})


# --- Changing many jobs at once -----------------------------------------------


def reset_jobs(
    tool,
    server: RemoteAnonServer,
    job_ids: Sequence[str],
    max_workers: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
) -> BulkResult:
    """Reset each job so that the server processes it again. A failure does not stop the others."""
    return tool.reset_jobs(server, job_ids, max_workers, on_done)


def cancel_jobs(
    tool,
    server: RemoteAnonServer,
    job_ids: Sequence[str],
    max_workers: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
) -> BulkResult:
    """Cancel each job, so that its status becomes INACTIVE. A failure does not stop the others."""
    return tool.cancel_jobs(server, job_ids, max_workers, on_done)


# --- Failed jobs, grouped by kind of error ------------------------------------


class ErrorKind:
    """A kind of job failure that users meet, how to recognise it, and what to do about it."""

    def __init__(self, key: str, title: str, advice: str, pattern: Optional[str] = None):
        self.key = key
        self.title = title
        self.advice = advice
        self._regex = re.compile(pattern, re.IGNORECASE | re.DOTALL) if pattern else None

    def matches(self, error: str) -> bool:
        return bool(self._regex and self._regex.search(error))

    def __repr__(self) -> str:
        return f"ErrorKind({self.key!r})"


# Recognised by the messages an IDIS server writes. The wording varies between
# server versions, so the patterns look for the telling part only.
ARCHIVE_NOT_FOUND = ErrorKind(
    "archive_404",
    "The image archive answered HTTP 404 Not Found",
    "Check the job's accession number or StudyInstanceUID first: a study that is not in the archive "
    "also gives this error. If it is right, this is often a passing fault of the image archive (PACS). "
    "Wait at least 30 minutes, then retry with `anon batch reset-error`.",
    r"HTTP Error 404|\b404\b[:\s]*Not Found",
)
ARCHIVE_BAD_REQUEST = ErrorKind(
    "archive_400",
    "The image archive answered HTTP 400 Bad Request",
    "The image archive (PACS) failed on this data, often because the study was imported wrongly. "
    "Retry with `anon batch reset-error` after a few hours, and again after a day or more, "
    "because these errors often clear up. If they do not, ask the archive's administrators "
    "to check the data of these studies (give them the accession numbers).",
    r"HTTP Error 400|\b400\b[:\s]*Bad Request",
)
DESTINATION_FULL = ErrorKind(
    "destination_full",
    "The destination share is full",
    "The server could not write to the destination: no space left on device. "
    "Free space on the destination share or choose another one, then retry with `anon batch reset-error`.",
    r"No space left on device|Errno 28\b",
)
OPTED_OUT = ErrorKind(
    "opted_out",
    "The patient has opted out",
    "The patient does not want their data used for research, so this data cannot be used. "
    "Only if the patient gave consent for this specific study may the job go ahead: then run "
    "`anon job set-opt-out-ignore JOB_ID \"REASON\"` with the consent as REASON, "
    "followed by `anon job reset JOB_ID`.",
    r"does not want .*research|opt(ed)?[ _-]?out",
)
STUCK_UPLOADED = ErrorKind(
    "stuck_uploaded",
    "Status UPLOADED for more than 30 minutes",
    "Jobs that stay UPLOADED usually have files held in quarantine, for example images with "
    "burned-in annotations such as ultrasound. Send the job ids to the administrator of the "
    "anonymization server.",
)
OTHER_ERROR = ErrorKind(
    "other",
    "Other errors",
    "See the message of each job. If it is not clear what to do, send the job ids to the "
    "administrator of the anonymization server.",
)

ERROR_KINDS = (ARCHIVE_NOT_FOUND, ARCHIVE_BAD_REQUEST, DESTINATION_FULL, OPTED_OUT)

# A job UPLOADED for longer than this is taken to be stuck.
STUCK_UPLOADED_AFTER = timedelta(minutes=30)


def classify_error(error: Optional[str]) -> ErrorKind:
    """Return the first kind whose pattern matches the error message, or OTHER_ERROR."""
    text = str(error or "")
    for kind in ERROR_KINDS:
        if kind.matches(text):
            return kind
    return OTHER_ERROR


class ErrorGroup:
    """Failed or stuck jobs of one kind, with the advice for that kind."""

    def __init__(self, kind: ErrorKind, job_infos: List[JobInfo]):
        self.kind = kind
        self.job_infos = job_infos

    @property
    def job_ids(self) -> List[str]:
        return [str(info.job_id) for info in self.job_infos]


def group_errors(status: BatchStatus, now: Optional[datetime] = None) -> List[ErrorGroup]:
    """Group the batch's ERROR jobs by kind of error, and add the jobs stuck in UPLOADED.

    Groups come in the order of ERROR_KINDS, then stuck jobs, then other
    errors, and jobs in a group are sorted by id. Empty groups are left out.
    """
    now = now or datetime.now()
    by_kind: Dict[str, List[JobInfo]] = {}
    for info in status.rows():
        if info.status == JobStatus.ERROR:
            kind = classify_error(info.error)
        elif info.status == JobStatus.UPLOADED and _uploaded_too_long(info, now):
            kind = STUCK_UPLOADED
        else:
            continue
        by_kind.setdefault(kind.key, []).append(info)

    order = list(ERROR_KINDS) + [STUCK_UPLOADED, OTHER_ERROR]
    return [ErrorGroup(kind, by_kind[kind.key]) for kind in order if kind.key in by_kind]


class ErrorReport:
    """The batch's status and its failed or stuck jobs, grouped by kind of error."""

    def __init__(self, status: BatchStatus, groups: List[ErrorGroup]):
        self.status = status
        self.groups = groups

    @property
    def job_count(self) -> int:
        return sum(len(group.job_infos) for group in self.groups)


def get_error_report(tool, batch: JobBatch, now: Optional[datetime] = None) -> ErrorReport:
    """Fetch the batch's status and group its failed and stuck jobs by kind of error.

    The failed and stuck jobs are fetched a second time with extended info,
    so that the report can show each job's source, such as the accession
    number that the archive's administrators need.

    :raises ServerError: if the server cannot be reached or rejects the request
    """
    status = get_batch_status(tool, batch)
    groups = group_errors(status, now=now)
    failed_ids = [job_id for group in groups for job_id in group.job_ids]
    if not failed_ids:
        return ErrorReport(status, groups)

    extended = tool.get_job_info_list(batch.server, failed_ids, get_extended_info=True)
    extended_by_id = {str(info.job_id): info for info in extended}
    for group in groups:
        group.job_infos = [extended_by_id.get(str(info.job_id), info) for info in group.job_infos]
    return ErrorReport(status, groups)


def _uploaded_too_long(info: JobInfo, now: datetime) -> bool:
    # NOTE: job info has no time of the last status change, only the creation
    # date (server local time, no zone). A job created more than 30 minutes
    # ago and still UPLOADED counts as stuck, which can flag a job that only
    # recently reached UPLOADED after a long wait in the queue.
    try:
        created = datetime.fromisoformat(str(info.date))
    except ValueError:
        return False
    return now - created > STUCK_UPLOADED_AFTER


# --- Waiting for a batch to finish --------------------------------------------


class WatchResult:
    """The last status seen by ``watch_batch``, and whether it stopped at the timeout."""

    def __init__(self, status: BatchStatus, timed_out: bool):
        self.status = status
        self.timed_out = timed_out


def watch_batch(
    tool,
    batch: JobBatch,
    interval: float = 10.0,
    timeout: Optional[float] = None,
    on_update: Optional[Callable[[BatchStatus], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WatchResult:
    """Fetch the batch's status every ``interval`` seconds until no job is ACTIVE or UPLOADED.

    ``on_update`` is called with every status fetched. Stops early when
    ``timeout`` seconds have passed (None waits for ever).

    :raises ServerError: if a status request fails
    """
    deadline = None if timeout is None else clock() + timeout
    while True:
        status = get_batch_status(tool, batch)
        logger.info(
            "Batch on %s: %s",
            batch.server,
            ", ".join(f"{count} {status_name}" for status_name, count in status.counts().items()),
        )
        if on_update is not None:
            on_update(status)
        if status.is_finished:
            return WatchResult(status, timed_out=False)
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                return WatchResult(status, timed_out=True)
            sleep(min(interval, remaining))
        else:
            sleep(interval)
