"""Faults that a test can switch on, to see how a client copes with a failing server.

Request faults apply to the next N calls to the server, the base URL and
get_token included. Calls of the admin function (``_sandbox/faults``) are
never counted or failed, so that faults can always be switched off. When
several kinds are queued, a call first waits for its delay and then fails or
is dropped.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from anonapi.responses import JobStatus

# The admin function that switches faults checks this header against the
# secret that the server keeps in ADMIN_SECRET_FILE_NAME in its data folder.
ADMIN_SECRET_HEADER = "X-Sandbox-Admin-Secret"
ADMIN_SECRET_FILE_NAME = "admin_secret"
# File in the data folder with the URL of the running server, for `anon sandbox fault`.
URL_FILE_NAME = "server_url"

# Statuses that jobs can be held in: the worker does not pick up held ACTIVE
# jobs, and moves jobs no further than UPLOADED while UPLOADED is held.
HOLDABLE_STATUSES = (JobStatus.ACTIVE, JobStatus.UPLOADED)


class RequestFault:
    """The fault for one call: a wait of ``delay`` seconds, then a response with ``status`` or a dropped connection."""

    def __init__(self, delay: float = 0.0, status: Optional[int] = None, drop: bool = False):
        self.delay = delay
        self.status = status
        self.drop = drop


class Faults:
    """Fault switches of one sandbox. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail_count = 0
        self._fail_status = 500
        self._delay_count = 0
        self._delay_seconds = 0.0
        self._drop_count = 0
        self._held_status: Optional[str] = None
        self._destination_full = False
        self._archive_failure_count = 0
        self._archive_failure_status = 404
        self.jobs_released = threading.Event()

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Respond to the next ``count`` calls with HTTP ``status`` and a plain-text body."""
        if count < 0 or not 100 <= status <= 599:
            raise ValueError(f"Invalid fault: count {count} must be >= 0, status {status} in 100-599")
        with self._lock:
            self._fail_count = count
            self._fail_status = status

    def delay_next(self, count: int = 1, seconds: float = 1.0) -> None:
        """Wait ``seconds`` before responding to each of the next ``count`` calls."""
        if count < 0 or seconds < 0:
            raise ValueError(f"Invalid fault: count {count} and seconds {seconds} must be >= 0")
        with self._lock:
            self._delay_count = count
            self._delay_seconds = seconds

    def drop_next(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` calls without sending a response."""
        if count < 0:
            raise ValueError(f"Invalid fault: count {count} must be >= 0")
        with self._lock:
            self._drop_count = count

    def hold_jobs(self, status: str) -> None:
        """Keep jobs in ``status`` (ACTIVE or UPLOADED) until release_jobs is called."""
        if status not in HOLDABLE_STATUSES:
            raise ValueError(f"Cannot hold jobs in status {status!r}; use one of {', '.join(HOLDABLE_STATUSES)}")
        with self._lock:
            self._held_status = status
            self.jobs_released.clear()

    def release_jobs(self) -> None:
        """Let held jobs go on."""
        with self._lock:
            self._held_status = None
            self.jobs_released.set()

    def fill_destination(self, full: bool = True) -> None:
        """Make every write to a destination fail with "No space left on device" (errno 28)."""
        with self._lock:
            self._destination_full = full

    def fail_archive_next(self, count: int = 1, status: int = 404) -> None:
        """Fail the next ``count`` WADO jobs as if the PACS responded with HTTP ``status`` (404 or 400)."""
        if count < 0 or status not in (400, 404):
            raise ValueError(f"Invalid fault: count {count} must be >= 0, status {status} 400 or 404")
        with self._lock:
            self._archive_failure_count = count
            self._archive_failure_status = status

    def clear(self) -> None:
        """Switch every fault off and release held jobs."""
        with self._lock:
            self._fail_count = self._delay_count = self._drop_count = 0
            self._destination_full = False
            self._archive_failure_count = 0
        self.release_jobs()

    # Used by the server and the worker

    def take_request_fault(self) -> Optional[RequestFault]:
        """Return the fault for the current call, using up one of each queued kind."""
        with self._lock:
            if not (self._fail_count or self._delay_count or self._drop_count):
                return None
            fault = RequestFault()
            if self._delay_count:
                self._delay_count -= 1
                fault.delay = self._delay_seconds
            if self._drop_count:
                self._drop_count -= 1
                fault.drop = True
            elif self._fail_count:
                self._fail_count -= 1
                fault.status = self._fail_status
            return fault

    @property
    def held_status(self) -> Optional[str]:
        with self._lock:
            return self._held_status

    @property
    def destination_full(self) -> bool:
        with self._lock:
            return self._destination_full

    def take_archive_failure(self) -> Optional[int]:
        """Return the HTTP status the PACS should fail with for this job, or None."""
        with self._lock:
            if not self._archive_failure_count:
                return None
            self._archive_failure_count -= 1
            return self._archive_failure_status

    def state(self) -> Dict[str, Any]:
        """Return the current switches, for the admin function."""
        with self._lock:
            return {
                "fail_next": {"count": self._fail_count, "status": self._fail_status},
                "delay_next": {"count": self._delay_count, "seconds": self._delay_seconds},
                "drop_next": {"count": self._drop_count},
                "held_status": self._held_status,
                "destination_full": self._destination_full,
                "fail_archive_next": {
                    "count": self._archive_failure_count,
                    "status": self._archive_failure_status,
                },
            }
