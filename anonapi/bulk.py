"""Run one job operation on many jobs at once, with a bounded number of requests in flight."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Dict, Iterable, Optional, TypeVar

from anonapi.exceptions import AnonAPIError, CredentialsRejectedError, ServerNotReachableError

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
    """Call ``operation(job_id)`` for every id, at most ``max_workers`` at a time.

    A failure on one job does not stop the others: AnonAPIError is recorded in
    ``failed`` and the rest go on. The exceptions are errors that every other
    job would meet as well: rejected credentials (401) and a server that cannot
    be reached. These stop the run and propagate, so that a wrong token does
    not cost one request and one error line per job. Any other exception is a
    bug and propagates.
    ``on_done(job_id, error_or_None)`` is called in the caller's thread after
    each job, for progress bars.
    """
    result = BulkResult()
    ids = list(job_ids)
    if not ids:
        return result

    executor = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(ids))))
    try:
        futures = {executor.submit(operation, job_id): job_id for job_id in ids}
        for future in as_completed(futures):
            job_id = futures[future]
            error: Optional[AnonAPIError] = None
            try:
                result.succeeded[job_id] = future.result()
            except STOPPING_ERRORS:
                raise
            except AnonAPIError as caught:
                error = caught
                result.failed[job_id] = caught
                logger.info("Job %s failed: %s", job_id, caught)
            if on_done is not None:
                on_done(job_id, error)
    finally:
        # After Ctrl+C or a bug, operations not yet started are dropped: only the
        # ones already running finish. A with-block would run all of them first.
        executor.shutdown(wait=True, cancel_futures=True)
    return result
