"""Create jobs on the server so that an interrupted run loses no job id and makes no duplicate.

``JobCreator`` sends the requests that ``anonapi.creation.plan_creation``
built, a bounded number at a time. Each job id is written to the creation
record ``.anoncreated`` as soon as the server returns it, before anything
else happens with it. Within ``_BatchWriter.SAVE_INTERVAL`` seconds it is
also saved in the batch of the same folder, where the ``anon batch``
commands find it.

The creation record
-------------------
``.anoncreated`` is a JSON Lines file next to the batch file. Lines are only
ever appended, each group with one ``write``, so a crash can at most cut off
the last line, which reading ignores. A mapping row is identified by its
key: the source and both pseudonyms as written in the mapping. Every line
names the server it is about. Line types:

``intent``
    written, and synced to disk with fsync, before the ``create_job``
    request of a row is sent. Its ``token`` is unique to this request and
    is also put into the job's description as ``[anonapi:<token>]``. Its
    ``floor`` is a job id that the server had returned before the line was
    written, so the new job's id is higher.
``job``
    the job id that the server returned, or that a lookup found, for a token.
``rejected``
    the server responded the request with an error, so no job exists for it.
``not_found``
    a lookup of the server's jobs found no job for these tokens.
``not_sent``
    these requests were never sent, because creation stopped first.
``batched``
    these job ids are in the batch file.

Why a kill at any moment loses no job id and makes no duplicate:

- killed before an intent line is written: its request was not sent;
- killed after the intent line but before the job line is written, whether
  the request was sent or not and whether the server created the job or
  not: the token has no outcome. The next run fetches from the server the jobs
  with ids above the floor and looks for the token in their descriptions. A
  job found is recorded and its row is skipped; otherwise a ``not_found``
  line is written and the row is created again;
- killed after the job line, before the batch was saved: the next run adds
  every recorded id without a ``batched`` line to the batch.

Lines other than intents are written without waiting for the disk: a killed
process cannot lose them, because the operating system already has them in its buffers.
A crash of the operating system or a power loss can lose them, but not the
synced intent lines, so the next run finds those jobs by their token.

NOTE: the lookup relies on the server keeping job descriptions as sent and
on job ids that only grow. A ``create_job`` request that the server carries
out only after a later run looked for it (a request delayed by more than
the read timeout plus the time until the re-run) still gives a duplicate.
"""

from __future__ import annotations

import collections
import datetime
import itertools
import json
import logging
import os
import re
import secrets
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from anonapi.exceptions import (
    AnonAPIError,
    APIError,
    BatchError,
    ConfigurationError,
    CredentialsRejectedError,
    UnknownFunctionError,
    WrongMethodError,
)
from anonapi.objects import RemoteAnonServer

if TYPE_CHECKING:
    from anonapi.creation import CreationPlan, JobRequest

logger = logging.getLogger(__name__)

CREATION_RECORD_FILE_NAME = ".anoncreated"

# Job ids asked for per request when looking for jobs by their token.
LOOKUP_CHUNK_SIZE = 1000

# Requests whose intent lines are synced to disk together, before any of them is sent.
INTENTS_PER_SYNC = 32

_MARKER_PATTERN = re.compile(r"\[anonapi:([0-9a-f]+-[0-9]+)\]")

# Errors after which the server certainly created no job: it rejected the
# request, or the request went to the wrong place. Any other error (time-out,
# dropped connection, status 5xx) leaves open whether the job exists.
_NO_JOB_ERRORS = (APIError, CredentialsRejectedError, WrongMethodError, UnknownFunctionError, ConfigurationError)

# Source, pseudo_id and pseudo_name of a mapping row, as written in the mapping.
RowKey = Tuple[str, str, str]


# --- The creation record -----------------------------------------------------------


class Attempt:
    """One ``create_job`` request whose outcome the record does not show: its token and floor."""

    def __init__(self, token: str, floor: int):
        self.token = token
        self.floor = floor

    def __repr__(self) -> str:
        return f"Attempt({self.token!r}, floor={self.floor})"


class RecordState:
    """The state of the rows of one server, as read from the creation record.

    :param job_ids: job id per row key
    :param pending: attempts without an outcome, per row key without a job
    :param unbatched: recorded job ids that no ``batched`` line confirms, in record order
    """

    def __init__(
        self,
        job_ids: Optional[Dict[RowKey, str]] = None,
        pending: Optional[Dict[RowKey, List[Attempt]]] = None,
        unbatched: Optional[List[str]] = None,
    ):
        self.job_ids = job_ids or {}
        self.pending = pending or {}
        self.unbatched = unbatched or []


class CreationRecord:
    """The append-only file ``.anoncreated`` that maps mapping rows to the jobs created for them."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / CREATION_RECORD_FILE_NAME
        self._descriptor: Optional[int] = None
        self._write_lock = threading.Lock()

    # Reading ---------------------------------------------------------------

    def read_entries(self) -> List[Dict[str, Any]]:
        """Return every valid line of the record as a dict.

        Lines that are not a JSON object are skipped with a warning. Such a
        line can only be one cut off by a crash while it was written, or one
        changed by hand. Skipping it is safe, because nothing acts on a line
        before it is written in full. A lost intent was never sent, and a
        lost job line leaves its intent without an outcome, so the next run
        looks for that job on the server.

        :raises BatchError: if the file cannot be read
        """
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise BatchError(
                f"Cannot read creation record '{self.path}': {error.strerror or error}. Check the file's permissions."
            ) from error

        entries = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                logger.warning("Skipping line %d of '%s': it is not a complete record line", number, self.path)
        return entries

    def read(self, server: RemoteAnonServer) -> RecordState:
        """Return the state of the rows on ``server``; lines about other servers are ignored."""
        from anonapi.batch import same_server

        job_ids: Dict[RowKey, str] = {}
        intents: Dict[str, Tuple[RowKey, int]] = {}
        resolved: Set[str] = set()
        recorded_ids: List[str] = []
        batched: Set[str] = set()
        for entry in self.read_entries():
            if not same_server(RemoteAnonServer("", str(entry.get("server", ""))), server):
                continue
            try:
                kind = entry.get("record")
                if kind == "intent":
                    intents[str(entry["token"])] = (_entry_key(entry), int(entry.get("floor") or 0))
                elif kind == "job":
                    job_id = str(int(entry["job_id"]))
                    job_ids[_entry_key(entry)] = job_id
                    recorded_ids.append(job_id)
                    if entry.get("token"):
                        resolved.add(str(entry["token"]))
                elif kind == "rejected":
                    resolved.add(str(entry["token"]))
                elif kind in ("not_found", "not_sent"):
                    resolved.update(str(token) for token in entry["tokens"])
                elif kind == "batched":
                    batched.update(str(job_id) for job_id in entry["job_ids"])
            except (KeyError, TypeError, ValueError) as error:
                logger.warning("Skipping a '%s' line of '%s' with an invalid value: %r", kind, self.path, error)

        pending: Dict[RowKey, List[Attempt]] = {}
        for token, (key, floor) in intents.items():
            if token not in resolved and key not in job_ids:
                pending.setdefault(key, []).append(Attempt(token, floor))
        unbatched = [job_id for job_id in dict.fromkeys(recorded_ids) if job_id not in batched]
        return RecordState(job_ids, pending, unbatched)

    # Writing -----------------------------------------------------------------

    def open_locked(self) -> None:
        """Open the record for appending and lock it, so that one creation runs in this folder at a time.

        The operating system releases the lock when the process ends, also when it is killed.

        :raises BatchError: if another process holds the lock, or the file cannot be opened
        """
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise BatchError(
                f"Cannot write creation record '{self.path}': {error.strerror or error}. "
                "Check that the folder is writable."
            ) from error
        if not _try_lock(descriptor, self.path):
            os.close(descriptor)
            raise BatchError(
                f"Another 'anon create' is creating jobs in '{self.path.parent}' (it has locked "
                f"'{self.path.name}'). Wait until it has finished, then run the command again."
            )
        self._descriptor = descriptor
        self._end_cut_off_line()

    def _end_cut_off_line(self) -> None:
        """End a line that a crash cut off, so that the next line does not continue it."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() == 0:
                    return
                handle.seek(-1, os.SEEK_END)
                last_byte = handle.read(1)
        except OSError as error:
            raise BatchError(f"Cannot read creation record '{self.path}': {error.strerror or error}.") from error
        if last_byte != b"\n":
            os.write(self._descriptor, b"\n")

    def close(self) -> None:
        """Close the record, which releases the lock."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def append(self, entries: Sequence[Dict[str, Any]], sync: bool = False) -> None:
        """Append entries as lines with one write; with ``sync``, also wait until they are on disk.

        Once written, the lines survive the end of this process, also by
        SIGKILL, because they are in the operating system's page cache. ``sync`` (fsync)
        makes them survive a crash of the operating system or a power loss
        as well, and makes every line written before them survive too.

        :raises BatchError: if writing fails
        """
        if self._descriptor is None:
            raise RuntimeError("open_locked() must be called before append()")
        now = datetime.datetime.now().isoformat(timespec="seconds")
        data = "".join(json.dumps({**entry, "time": now}, ensure_ascii=False) + "\n" for entry in entries)
        remaining = memoryview(data.encode("utf-8"))
        with self._write_lock:
            try:
                while remaining:
                    remaining = remaining[os.write(self._descriptor, remaining):]
                if sync:
                    os.fsync(self._descriptor)
            except OSError as error:
                raise BatchError(
                    f"Cannot write creation record '{self.path}': {error.strerror or error}. "
                    "Free disk space or check the folder, then run the command again."
                ) from error


def _entry_key(entry: Dict[str, Any]) -> RowKey:
    return (str(entry.get("source", "")), str(entry.get("pseudo_id", "")), str(entry.get("pseudo_name", "")))


def _key_fields(key: RowKey) -> Dict[str, str]:
    return {"source": key[0], "pseudo_id": key[1], "pseudo_name": key[2]}


def _try_lock(descriptor: int, path: Path) -> bool:
    """Take an exclusive, non-blocking lock on an open file. Return False if another process has it.

    On a file system that has no locks (some network shares), go on without
    one and log a warning.
    """
    try:
        import fcntl
    except ImportError:
        return _try_lock_windows(descriptor)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        logger.warning(
            "Cannot lock '%s' (%s), so nothing stops a second 'anon create' in this folder. Run only one.",
            path, error.strerror or error,
        )
    return True


def _try_lock_windows(descriptor: int) -> bool:
    # NOTE: not run on Windows yet. The locked byte lies far beyond the end of
    # the file, so that reading and appending the record are not blocked.
    import msvcrt

    position = os.lseek(descriptor, 0, os.SEEK_CUR)
    try:
        os.lseek(descriptor, 2**30, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    finally:
        os.lseek(descriptor, position, os.SEEK_SET)
    return True


# --- Creating the jobs ---------------------------------------------------------------


class CreationResult:
    """Outcome of a creation run, per request.

    :param created: ``(request, job_id)`` for each job created, in the order the responses arrived
    :param found: ``(request, job_id)`` for jobs of earlier attempts found on the server
    :param failed: ``(request, error)`` for requests the server rejected: no job exists for them
    :param unknown: ``(request, error)`` for requests whose outcome is unknown
        (time-out, dropped connection); the next run looks for their jobs
    :param not_sent: rows left out because creation stopped after an error or an interruption
    :param batch_error: why saving ids in the batch failed, if it did; the ids are in the record
    """

    def __init__(self) -> None:
        self.created: List[Tuple[JobRequest, str]] = []
        self.found: List[Tuple[JobRequest, str]] = []
        self.failed: List[Tuple[JobRequest, AnonAPIError]] = []
        self.unknown: List[Tuple[JobRequest, AnonAPIError]] = []
        self.not_sent: List[JobRequest] = []
        self.batch_error: Optional[AnonAPIError] = None
        self.interrupted = False

    @property
    def job_ids(self) -> List[str]:
        return [job_id for _, job_id in self.found + self.created]

    @property
    def complete(self) -> bool:
        """Whether every requested row now has a job."""
        return not (self.failed or self.unknown or self.not_sent or self.interrupted)


ResultCallback = Callable[["JobRequest", Optional[str], Optional[AnonAPIError]], None]


class JobCreator:
    """Creates the jobs of a plan on one server and records them in the folder's record and batch.

    Use it as a context manager: entering locks the creation record of
    ``folder`` and checks that the folder's batch, if any, belongs to
    ``server``::

        with JobCreator(tool, server, folder) as creator:
            creator.look_up_earlier_attempts(plan)
            result = creator.create(plan)

    :param tool: an ``anonapi.client.AnonClientTool``
    :param max_workers: requests in flight at once
    """

    def __init__(self, tool, server: RemoteAnonServer, folder: Path, max_workers: int = 8):
        from anonapi.batch import BatchFolder

        self.tool = tool
        self.server = server
        self.folder = Path(folder)
        self.max_workers = max(1, max_workers)
        self.record = CreationRecord(self.folder)
        self.batch_folder = BatchFolder(self.folder)
        self._run_id = secrets.token_hex(4)
        self._sequence = 0
        # A job id the server returned before the next request is sent, so
        # that request's job gets a higher id. See the module docstring.
        self._floor = 0
        self._run_floor = 0
        self._floor_known = False
        self._unknown_attempts: List[Tuple[JobRequest, str]] = []

    def __enter__(self) -> "JobCreator":
        self._check_batch_server()
        self.record.open_locked()
        try:
            self._add_unbatched_ids()
        except BaseException:
            self.record.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.record.close()

    def _check_batch_server(self) -> None:
        from anonapi.batch import same_server

        if not self.batch_folder.has_batch():
            return
        batch = self.batch_folder.load()
        if not same_server(batch.server, self.server):
            raise BatchError(
                f"The batch in '{self.folder}' belongs to {batch.server}, not to the active server {self.server}. "
                "Create jobs for this server in another folder, or activate the batch's server with "
                f"`anon server activate {batch.server.name}`."
            )

    def _add_unbatched_ids(self) -> None:
        """Add recorded job ids that an interrupted run did not get into the batch."""
        unbatched = self.record.read(self.server).unbatched
        if unbatched:
            logger.info("Adding %d recorded job ids to the batch in '%s'", len(unbatched), self.folder)
            self.batch_folder.add_job_ids(unbatched, self.server)
            self.record.append([{"record": "batched", "server": self.server.url, "job_ids": unbatched}])

    def refresh(self, plan: CreationPlan) -> CreationPlan:
        """Drop rows from the plan that another run recorded a job for since the plan was made."""
        state = self.record.read(self.server)
        keep = []
        for request in plan.requests:
            if request.key in state.job_ids:
                plan.already_created.append((request, state.job_ids[request.key]))
            else:
                keep.append(request)
        plan.requests = keep
        keys = {request.key for request in keep}
        plan.earlier_attempts = {key: attempts for key, attempts in state.pending.items() if key in keys}
        return plan

    def look_up_earlier_attempts(self, plan: CreationPlan) -> List[Tuple[JobRequest, str]]:
        """Find jobs that earlier, interrupted runs created for rows of the plan, and record them.

        Rows whose job is found move from ``plan.requests`` to
        ``plan.already_created``. For the others a ``not_found`` line lets
        this run create them again.

        :raises ServerError: if the server cannot be asked; nothing is created then
        """
        self._floor = self._run_floor = self._latest_job_id()
        if not plan.earlier_attempts:
            return []
        tokens = {attempt.token: key for key, attempts in plan.earlier_attempts.items() for attempt in attempts}
        floor = min(attempt.floor for attempts in plan.earlier_attempts.values() for attempt in attempts)
        found_ids = find_jobs_by_token(self.tool, self.server, set(tokens), floor, self._floor)

        by_key = {request.key: request for request in plan.requests}
        found: List[Tuple[JobRequest, str]] = []
        entries = []
        for token, job_id in found_ids.items():
            request = by_key[tokens[token]]
            earlier = [other_id for done, other_id in found if done is request]
            if earlier:
                logger.warning(
                    "%s has two jobs, %s and %s: a request of an interrupted run was carried out late. "
                    "Cancel one of them with 'anon job cancel'.", request.label, earlier[0], job_id)
            found.append((request, job_id))
            entries.append(self._job_entry(request, token, job_id, found=True))
        not_found = [token for token in tokens if token not in found_ids]
        if not_found:
            entries.append({"record": "not_found", "server": self.server.url, "tokens": not_found})
        if entries:
            self.record.append(entries)
        if found:
            self._save_in_batch([job_id for _, job_id in found])

        found_keys = {request.key for request, _ in found}
        plan.requests = [request for request in plan.requests if request.key not in found_keys]
        plan.already_created.extend(found)
        plan.earlier_attempts = {}
        return found

    def _latest_job_id(self) -> int:
        latest = self.tool.get_jobs(self.server)
        self._floor_known = True
        return max((info.job_id or 0 for info in latest), default=0)

    def create(self, plan: CreationPlan, on_result: Optional[ResultCallback] = None) -> CreationResult:
        """Create a job for each request of the plan, ``max_workers`` at a time.

        Each id is recorded the moment the server returns it. Creation stops
        sending new requests after the first error, or after Ctrl+C (then
        ``result.interrupted`` is set), and still records the responses to
        the requests already sent.
        ``on_result(request, job_id, error)`` is called in this thread after
        each response.
        """
        if not self._floor_known:
            self._floor = self._run_floor = self._latest_job_id()
        result = CreationResult()
        writer = _BatchWriter(self.batch_folder, self.server, self.record)
        writer.start()
        try:
            self._create_all(plan.requests, result, writer, on_result)
        finally:
            result.batch_error = writer.close()
        if result.unknown:
            self._look_up_unknown(result)
        return result

    def _create_all(self, requests, result: CreationResult, writer: "_BatchWriter", on_result) -> None:
        """Send the requests, at most ``max_workers`` at a time, and record every response.

        Intent lines are written and synced to disk in blocks of
        ``INTENTS_PER_SYNC`` requests before any of them is sent, so that a
        slow disk costs one fsync per block rather than one per job. The job
        line of each response is written before its id goes anywhere else,
        and reaches the disk with the next sync (see CreationRecord.append).
        """
        remaining = iter(requests)
        ready: Deque[Tuple[JobRequest, str]] = collections.deque()
        in_flight: Dict[Future, Tuple[JobRequest, str]] = {}
        responded: List[Tuple[Future, JobRequest, str]] = []
        stop = False
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="create-job") as executor:
            while True:
                stop = self._record_responses(responded, result, writer, on_result) or stop
                if not stop:
                    if len(ready) < self.max_workers:
                        ready.extend(self._write_intents(remaining))
                    while ready and len(in_flight) < self.max_workers:
                        request, token = ready.popleft()
                        in_flight[executor.submit(request.send, self.tool, self.server, token)] = (request, token)
                if not in_flight:
                    break
                try:
                    done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # Keep recording the responses to requests already sent. A second Ctrl+C ends at once.
                    logger.warning("Interrupted: waiting for %d requests already sent", len(in_flight))
                    stop = result.interrupted = True
                    responded = []
                    continue
                responded = [(future, *in_flight.pop(future)) for future in done]

        if ready:
            # Their intents are on disk, but they were never sent, so no later run needs to look for them.
            self.record.append([{"record": "not_sent", "server": self.server.url,
                                 "tokens": [token for _, token in ready]}])
        result.not_sent = [request for request, _ in ready] + list(remaining)

    def _write_intents(self, remaining) -> List[Tuple[JobRequest, str]]:
        """Take the next block of requests, sync their intent lines to disk and return them with their tokens."""
        block = []
        for request in itertools.islice(remaining, INTENTS_PER_SYNC):
            block.append((request, self._next_token()))
        if block:
            self.record.append([self._intent_entry(request, token) for request, token in block], sync=True)
        return block

    def _record_responses(self, responded, result: CreationResult, writer: "_BatchWriter", on_result) -> bool:
        """Record the responses in one write, then pass them on. Return True if creation should stop."""
        entries: List[Dict[str, Any]] = []
        outcomes = []
        stop = False
        for future, request, token in responded:
            job_id, error, entry = self._read_response(future, request, token)
            if entry is not None:
                entries.append(entry)
            if job_id is None:
                stop = True
            else:
                # Requests sent from now on make jobs with higher ids.
                self._floor = max(self._floor, int(job_id))
            outcomes.append((request, token, job_id, error))
        if entries:
            self.record.append(entries)
        for request, token, job_id, error in outcomes:
            self._count_outcome(request, token, job_id, error, result, writer)
            _notify(on_result, request, job_id, error)
        return stop

    def _read_response(
        self, future: Future, request: JobRequest, token: str
    ) -> Tuple[Optional[str], Optional[AnonAPIError], Optional[Dict[str, Any]]]:
        """Return the job id or the error of one response, and the line to record for it (if any)."""
        try:
            info = future.result()
            if info.job_id is None:
                raise _MissingJobId(f"The server's response to create_job for {request.label} contains no job id.")
        except _NO_JOB_ERRORS as error:
            return None, error, {"record": "rejected", "server": self.server.url, "token": token, "error": str(error)}
        except AnonAPIError as error:
            # Whether the job exists is unknown: the intent line stays without an outcome.
            return None, error, None
        job_id = str(info.job_id)
        return job_id, None, self._job_entry(request, token, job_id)

    def _count_outcome(self, request: JobRequest, token: str, job_id, error, result, writer) -> None:
        if job_id is not None:
            writer.add(job_id)
            result.created.append((request, job_id))
        elif isinstance(error, _NO_JOB_ERRORS):
            result.failed.append((request, error))
        else:
            result.unknown.append((request, error))
            self._unknown_attempts.append((request, token))

    def _look_up_unknown(self, result: CreationResult) -> None:
        """Look on the server for the jobs of requests that ended in a time-out or a dropped connection.

        Jobs not found stay without an outcome in the record, so the next run looks again.
        """
        tokens = {token: request for request, token in self._unknown_attempts}
        try:
            found_ids = find_jobs_by_token(self.tool, self.server, set(tokens), self._run_floor, None)
        except AnonAPIError as error:
            logger.warning("Could not look for the jobs of %d unresponded requests: %s", len(tokens), error)
            return
        if not found_ids:
            return
        found = []
        entries = []
        for token, job_id in found_ids.items():
            found.append((tokens[token], job_id))
            entries.append(self._job_entry(tokens[token], token, job_id, found=True))
        self.record.append(entries)
        try:
            self._save_in_batch([job_id for _, job_id in found])
        except AnonAPIError as error:
            result.batch_error = error
        result.found.extend(found)
        found_requests = {id(request) for request, _ in found}
        result.unknown = [(request, error) for request, error in result.unknown if id(request) not in found_requests]

    def _save_in_batch(self, job_ids: List[str]) -> None:
        self.batch_folder.add_job_ids(job_ids, self.server)
        self.record.append([{"record": "batched", "server": self.server.url, "job_ids": job_ids}])

    def _next_token(self) -> str:
        self._sequence += 1
        return f"{self._run_id}-{self._sequence}"

    def _intent_entry(self, request: JobRequest, token: str) -> Dict[str, Any]:
        return {
            "record": "intent",
            "server": self.server.url,
            "token": token,
            **_key_fields(request.key),
            "line": request.line_number,
            "floor": self._floor,
        }

    def _job_entry(self, request: JobRequest, token: str, job_id: str, found: bool = False) -> Dict[str, Any]:
        entry = {
            "record": "job",
            "server": self.server.url,
            "token": token,
            **_key_fields(request.key),
            "line": request.line_number,
            "job_id": job_id,
        }
        if found:
            entry["found_on_server"] = True
        return entry


class _MissingJobId(AnonAPIError):
    """The response to create_job contains no job id, so whether a job exists is unknown."""


def _notify(on_result: Optional[ResultCallback], request: JobRequest, job_id, error) -> None:
    if on_result is not None:
        on_result(request, job_id, error)


class _BatchWriter(threading.Thread):
    """Saves new job ids in the batch file from a thread of its own, at most every ``SAVE_INTERVAL`` seconds.

    Saving rewrites the whole batch file under a lock: on the machine of
    docs/benchmarks.md that costs about 10 ms of CPU time for a batch of
    1,000 ids, so saving after every job would cost more than creating it.
    Ids that arrive in between are saved together. The creation record
    contains every id before it gets here, so an id that a crash keeps out
    of the batch is added by the next run.

    ``add`` only appends to a list, and wakes the thread for the first id
    after a save, not for every id: a wake-up per job cost more CPU time in
    the creating thread than the rest of ``add``.
    """

    SAVE_INTERVAL = 0.25

    def __init__(self, batch_folder, server: RemoteAnonServer, record: CreationRecord):
        super().__init__(name="batch-writer", daemon=True)
        self.batch_folder = batch_folder
        self.server = server
        self.record = record
        self._lock = threading.Lock()
        self._waiting: List[str] = []
        self._has_ids = threading.Event()
        self._closing = threading.Event()
        self._error: Optional[AnonAPIError] = None

    def add(self, job_id: str) -> None:
        with self._lock:
            self._waiting.append(job_id)
        # Setting the event again would notify its waiters again, so it is set only when it is clear.
        if not self._has_ids.is_set():
            self._has_ids.set()

    def close(self) -> Optional[AnonAPIError]:
        """Save the ids still waiting, stop the thread and return the last error of a save, if any.

        Call it after the last ``add``.
        """
        self._closing.set()
        self._has_ids.set()
        self.join()
        return self._error

    def run(self) -> None:
        while True:
            self._has_ids.wait()
            # Collect the ids that arrive within SAVE_INTERVAL; close() ends the wait at once.
            self._closing.wait(self.SAVE_INTERVAL)
            closing = self._closing.is_set()
            with self._lock:
                job_ids, self._waiting = self._waiting, []
                self._has_ids.clear()
            if job_ids and not self._save(job_ids):
                # Tried again with the next id, or when creation ends.
                with self._lock:
                    self._waiting[:0] = job_ids
            if closing:
                return

    def _save(self, job_ids: List[str]) -> bool:
        try:
            self.batch_folder.add_job_ids(job_ids, self.server)
            self.record.append([{"record": "batched", "server": self.server.url, "job_ids": list(job_ids)}])
        except AnonAPIError as error:
            # The ids are in the creation record; the next run adds them to the batch.
            logger.warning("Could not save %d job ids in the batch: %s", len(job_ids), error)
            self._error = error
            return False
        return True


# --- Finding jobs by their token ------------------------------------------------------


def find_jobs_by_token(
    tool, server: RemoteAnonServer, tokens: Set[str], floor: int, latest_job_id: Optional[int]
) -> Dict[str, str]:
    """Return the job id per token for jobs on ``server`` whose description carries one of ``tokens``.

    Looks at the jobs with ids above ``floor``, first up to
    ``latest_job_id`` in one go, then further in chunks until a chunk
    contains no job at all. ``latest_job_id`` is the highest id among the
    server's latest jobs, and is fetched when None.

    :raises ServerError: if the server cannot be asked
    """
    if latest_job_id is None:
        latest_job_id = max((info.job_id or 0 for info in tool.get_jobs(server)), default=0)
    found: Dict[str, str] = {}
    first = floor + 1
    last = max(latest_job_id, first + LOOKUP_CHUNK_SIZE - 1)
    while True:
        infos = tool.get_job_info_list(server, [str(job_id) for job_id in range(first, last + 1)])
        for info in infos:
            for token in _MARKER_PATTERN.findall(str(info.description or "")):
                if token in tokens and token not in found:
                    found[token] = str(info.job_id)
        if len(found) == len(tokens) or not len(infos):
            return found
        first, last = last + 1, last + LOOKUP_CHUNK_SIZE


