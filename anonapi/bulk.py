"""Run one job operation on many jobs at once, with a bounded number of requests in flight."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, TypeVar, Union

from anonapi.exceptions import AnonAPIError, CredentialsRejectedError, NoResponseError, ServerNotReachableError

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

# Enough to hide network latency, few enough not to flood a hospital server.
DEFAULT_MAX_CONCURRENT_REQUESTS = 8


# Errors that every remaining job would meet too, so the run stops at the first.
STOPPING_ERRORS = (CredentialsRejectedError, ServerNotReachableError)



class BulkResult:
    """Outcome per job id: ``succeeded`` maps id to result, ``failed`` maps id to the error."""

    def __init__(self) -> None:
        self.succeeded: Dict[str, object] = {}
        self.failed: Dict[str, AnonAPIError] = {}

    @property
    def all_succeeded(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """Return a line such as ``3 succeeded, 1 failed``."""
        return f"{len(self.succeeded)} succeeded, {len(self.failed)} failed"


def run_bulk(
    operation: Callable[[str], Result],
    job_ids: Iterable[str],
    max_workers: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
    on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
) -> BulkResult:
    """Call ``operation(job_id)`` for every id, at most ``max_workers`` at a time, in threads.

    A failure on one job does not stop the others: AnonAPIError is recorded in
    ``failed`` and the rest go on. The exceptions are errors that every other
    job would meet as well: rejected credentials (401), a server that cannot
    be reached, and a server that stopped responding (see ``collect``).
    These stop the run and propagate, so that a wrong token does not cost one
    request and one error line per job. The error's ``bulk_result`` is the
    BulkResult of what was done before. Any other exception is a bug and propagates.
    ``on_done(job_id, error_or_None)`` is called in the caller's thread after
    each job, for progress bars.
    """
    return collect(in_threads(operation, job_ids, max_workers), on_done, max_workers)


def in_threads(
    operation: Callable[[str], Result], job_ids: Iterable[str], max_workers: int = DEFAULT_MAX_CONCURRENT_REQUESTS
) -> Iterator[Tuple[str, Union[Result, AnonAPIError]]]:
    """Call ``operation(job_id)`` for every id in at most ``max_workers`` threads; yield ``(job_id, outcome)``.

    The outcome is the result, or the AnonAPIError the operation raised. Any
    other exception propagates. Closing the generator drops the calls not yet
    started and waits for the running ones.
    """
    # Imported here: the commands that change many jobs send them from one thread.
    from concurrent.futures import ThreadPoolExecutor, as_completed

    ids = list(job_ids)
    if not ids:
        return
    executor = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(ids))))
    try:
        futures = {executor.submit(operation, job_id): job_id for job_id in ids}
        for future in as_completed(futures):
            try:
                outcome: Union[Result, AnonAPIError] = future.result()
            except AnonAPIError as error:
                outcome = error
            yield futures[future], outcome
    finally:
        # After Ctrl+C, a stopping error or a bug, operations not yet started are
        # dropped: only the ones already running finish. A with-block would run all of them first.
        executor.shutdown(wait=True, cancel_futures=True)


def collect(
    outcomes: Iterable[Tuple[str, Any]],
    on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
    max_in_flight: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
) -> BulkResult:
    """Record ``(job_id, result or AnonAPIError)`` pairs in a BulkResult, as ``run_bulk`` describes.

    A call without a response (NoResponseError) fails only its job. The run
    stops when more than ``max_in_flight`` of them come in a row. The caller
    passes the most calls it has under way at once, so then a call sent after
    the first unanswered one got no response either, and none got one in between.

    Raises the error that stops the run, with ``bulk_result`` set, after
    closing ``outcomes`` so that no more calls are sent.
    """
    result = BulkResult()
    iterator = iter(outcomes)
    without_response = 0
    try:
        for job_id, outcome in iterator:
            error: Optional[AnonAPIError] = None
            if isinstance(outcome, NoResponseError):
                without_response += 1
                if without_response > max_in_flight:
                    result.failed[job_id] = outcome
                    outcome.bulk_result = result
                    raise outcome
            elif isinstance(outcome, STOPPING_ERRORS):
                outcome.bulk_result = result
                raise outcome
            else:
                without_response = 0
            if isinstance(outcome, AnonAPIError):
                error = outcome
                result.failed[job_id] = outcome
                logger.info("Job %s failed: %s", job_id, outcome)
            else:
                result.succeeded[job_id] = outcome
            if on_done is not None:
                on_done(job_id, error)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return result
