"""Stand-ins for servers and job info, for testing code that uses anonapi without a server.

Example::

    tool = MockAnonClientTool(responses=[JobInfoFactory(status=JobStatus.DONE)])
    tool.get_job_info(RemoteAnonServerFactory(), job_id=12).status   # "DONE"

This module needs factory_boy, which is installed with anonapi.
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import factory

from anonapi.bulk import BulkResult, run_bulk
from anonapi.client import AnonClientTool, ServerStatus
from anonapi.exceptions import AnonAPIError
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobInfo, JobsInfoList, JobStatus

__all__ = [
    "JobInfoFactory",
    "JobStatus",
    "MockAnonClientTool",
    "RemoteAnonServerFactory",
]


class RemoteAnonServerFactory(factory.Factory):
    """Builds RemoteAnonServer objects named server0, server1, ..."""

    class Meta:
        model = RemoteAnonServer

    name = factory.Sequence(lambda number: f"server{number}")
    url = factory.Sequence(lambda number: f"https://anonserver{number}.example.org/api")


class JobInfoFactory(factory.Factory):
    """Builds extended JobInfo objects with realistic values. Give any field to override it."""

    class Meta:
        model = JobInfo

    job_id = factory.Sequence(lambda number: 1000 + number)
    date = "2019-11-26T16:34:07"
    user_name = "z123sandbox"
    status = JobStatus.DONE
    error = None
    description = "a test job"
    project_name = "Wetenschap-Algemeen"
    priority = 0
    files_downloaded = 33
    files_processed = 33
    destination_id = factory.Sequence(lambda number: 2000 + number)
    destination_name = None
    destination_path = r"\\server\share\output"
    destination_network = None
    destination_status = "BASE"
    destination_type = "PATH"
    source_id = factory.Sequence(lambda number: 3000 + number)
    source_instance_id = None
    source_status = "NEW"
    source_type = "PATH"
    source_anonymizedpatientid = factory.Sequence(lambda number: f"{number:04d}")
    source_anonymizedpatientname = factory.Sequence(lambda number: f"PATIENT_{number:04d}")
    source_pims_keyfile_id = None
    source_name = None
    source_path = factory.Sequence(lambda number: rf"\\server\share\input\patient{number}")
    source_protocol = 3
    source_subject = factory.Sequence(lambda number: 4000 + number)


class MockAnonClientTool(AnonClientTool):
    """An AnonClientTool that talks to no server.

    Each job method returns the next of ``responses``, in turn and starting
    again after the last, as a copy with the requested job id set. Without
    responses it makes three realistic ones. ``calls`` records
    ``(method name, server, job id)`` for every call.
    """

    def __init__(self, responses: Optional[Sequence[JobInfo]] = None):
        super().__init__(username="mock_user", token="mock_token")
        self.responses: List[JobInfo] = list(responses) if responses else JobInfoFactory.build_batch(3)
        self.calls: List[tuple] = []
        self._cycle = itertools.cycle(self.responses)
        self._lock = threading.Lock()
        self._new_job_ids = itertools.count(max((info.job_id or 0) for info in self.responses) + 1)

    def _next_response(self, method_name: str, server: RemoteAnonServer, job_id: Any, **changes: Any) -> JobInfo:
        with self._lock:
            self.calls.append((method_name, server, job_id))
            response = copy.deepcopy(next(self._cycle))
        response.job_id = int(job_id)
        for name, value in changes.items():
            setattr(response, name, value)
        return response

    def get_server_status(self, server: RemoteAnonServer) -> ServerStatus:
        with self._lock:
            self.calls.append(("get_server_status", server, None))
        return ServerStatus(server, is_online=True, message="mock server, always up")

    def get_job_info(self, server: RemoteAnonServer, job_id: Any) -> JobInfo:
        return self._next_response("get_job_info", server, job_id)

    def get_job_info_list(
        self, server: RemoteAnonServer, job_ids: Iterable[Any], get_extended_info: bool = False
    ) -> JobsInfoList:
        return JobsInfoList([self._next_response("get_job_info_list", server, job_id) for job_id in job_ids])

    def get_jobs(self, server: RemoteAnonServer) -> JobsInfoList:
        with self._lock:
            self.calls.append(("get_jobs", server, None))
        # Newest first, as AnonClientTool.get_jobs returns them.
        responses = sorted(copy.deepcopy(self.responses), key=lambda info: info.job_id or 0, reverse=True)
        return JobsInfoList(responses)

    def cancel_job(self, server: RemoteAnonServer, job_id: Any) -> JobInfo:
        return self._next_response("cancel_job", server, job_id, status=JobStatus.INACTIVE)

    def reset_job(self, server: RemoteAnonServer, job_id: Any) -> JobInfo:
        return self._next_response(
            "reset_job", server, job_id, status=JobStatus.ACTIVE, files_downloaded=0, files_processed=0, error=" "
        )

    def cancel_jobs(
        self,
        server: RemoteAnonServer,
        job_ids: Iterable[Any],
        max_concurrent_requests: Optional[int] = None,
        on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
    ) -> BulkResult:
        return self._for_each(self.cancel_job, server, job_ids, max_concurrent_requests, on_done)

    def reset_jobs(
        self,
        server: RemoteAnonServer,
        job_ids: Iterable[Any],
        max_concurrent_requests: Optional[int] = None,
        on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
    ) -> BulkResult:
        return self._for_each(self.reset_job, server, job_ids, max_concurrent_requests, on_done)

    def _for_each(self, change: Callable, server: RemoteAnonServer, job_ids: Iterable[Any],
                  max_concurrent_requests: Optional[int], on_done: Optional[Callable]) -> BulkResult:
        ids = [str(job_id) for job_id in job_ids]
        workers = max_concurrent_requests or self.max_concurrent_requests
        return run_bulk(lambda job_id: change(server, job_id), ids, workers, on_done)

    def set_opt_out_ignore(self, server: RemoteAnonServer, job_id: Any, reason: str) -> JobInfo:
        return self._next_response("set_opt_out_ignore", server, job_id)

    # The create methods take the same arguments as AnonClientTool's, so that a
    # misspelled argument fails here as it would against a server.
    def create_path_job(
        self,
        server: RemoteAnonServer,
        project_name: str,
        source_path: str,
        destination_path: str,
        anon_name: Optional[str] = None,
        anon_id: Optional[str] = None,
        pims_keyfile_id: Optional[str] = None,
        description: Optional[str] = None,
    ) -> JobInfo:
        return self._next_response(
            "create_path_job", server, next(self._new_job_ids), status=JobStatus.ACTIVE, source_type="PATH",
            project_name=project_name, source_path=source_path, destination_path=destination_path,
            **_created_job_fields(anon_name, anon_id, pims_keyfile_id, description),
        )

    def create_pacs_job(
        self,
        server: RemoteAnonServer,
        project_name: str,
        source_instance_id: str,
        destination_path: str,
        anon_name: Optional[str] = None,
        anon_id: Optional[str] = None,
        source_name: str = "IDC_WADO",
        sop_class_filter_list: Optional[Sequence[str]] = None,
        pims_keyfile_id: Optional[str] = None,
        description: Optional[str] = None,
    ) -> JobInfo:
        return self._next_response(
            "create_pacs_job", server, next(self._new_job_ids), status=JobStatus.ACTIVE, source_type="WADO",
            project_name=project_name, source_instance_id=source_instance_id, destination_path=destination_path,
            source_name=source_name, source_path=None,
            **_created_job_fields(anon_name, anon_id, pims_keyfile_id, description),
        )

    def get_token(self, server: RemoteAnonServer, password: str) -> str:
        with self._lock:
            self.calls.append(("get_token", server, None))
        return "mock_token"


def _created_job_fields(
    anon_name: Optional[str], anon_id: Optional[str], pims_keyfile_id: Optional[str], description: Optional[str]
) -> Dict[str, Any]:
    """Return the JobInfo fields that the optional create arguments set.

    Arguments left out (None) keep the value of the response.
    """
    fields = {
        "source_anonymizedpatientname": anon_name,
        "source_anonymizedpatientid": anon_id,
        "source_pims_keyfile_id": pims_keyfile_id,
        "description": description,
    }
    return {name: value for name, value in fields.items() if value is not None}
