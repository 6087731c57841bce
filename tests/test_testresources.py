"""Tests of anonapi.testresources, including the testing and exceptions examples of the reference manual."""

from __future__ import annotations

import socket
import textwrap

from anonapi.batch import reset_jobs
from anonapi.responses import JobInfo
from anonapi.testresources import JobInfoFactory, JobStatus, MockAnonClientTool, RemoteAnonServerFactory

TESTING_EXAMPLE = r"""
from anonapi.testresources import (
    MockAnonClientTool,
    JobInfoFactory,
    RemoteAnonServerFactory,
    JobStatus,
)

# Create a mock client tool that returns information about jobs
tool = MockAnonClientTool()

# Client tool methods need a server to query. This is mocked too here
mock_server = RemoteAnonServerFactory()
tool.get_job_info(server=mock_server, job_id=1)    # Returns realistic JobInfo response

# You can set the responses that mock client cycles through:
some_responses = [
    JobInfoFactory(status=JobStatus.DONE),
    JobInfoFactory(status=JobStatus.ERROR),
    JobInfoFactory(status=JobStatus.INACTIVE),
]
tool = MockAnonClientTool(responses=some_responses)
tool.get_job_info(mock_server, job_id=1).status # returns JobStatus.DONE
tool.get_job_info(mock_server, job_id=1).status # returns JobStatus.ERROR
tool.get_job_info(mock_server, job_id=1).status # returns JobStatus.INACTIVE
tool.get_job_info(mock_server, job_id=1).status # returns JobStatus.DONE again

# You can set any of the JobInfo fields on the JobInfo instances:
JobInfoFactory(project_name='project1',
                destination_path='\\server\\share\\folder',
                priority=50)
"""

# The manual's exceptions example, with RemoteAnonServer imported from
# anonapi.objects and a local closed port in place of https://aserver.
EXCEPTIONS_EXAMPLE = """
from anonapi.exceptions import AnonAPIError
from anonapi.client import AnonClientTool
from anonapi.objects import RemoteAnonServer

tool = AnonClientTool('user', 'token')
server = RemoteAnonServer('a_server', 'http://127.0.0.1:{port}')
try:
    tool.get_server_status(server)

except AnonAPIError as e:
    print(f"Something went wrong but its anonapi's fault. Look: {{e}}")
"""


def test_manual_testing_example_runs():
    exec(compile(TESTING_EXAMPLE, "manual testing example", "exec"), {})


def test_manual_exceptions_example_runs(monkeypatch):
    from anonapi.client import WebAPIClient

    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exec(compile(textwrap.dedent(EXCEPTIONS_EXAMPLE.format(port=port)), "manual exceptions example", "exec"), {})


def test_mock_cycles_responses():
    server = RemoteAnonServerFactory()
    tool = MockAnonClientTool(
        responses=[JobInfoFactory(status=JobStatus.DONE), JobInfoFactory(status=JobStatus.ERROR)]
    )
    statuses = [tool.get_job_info(server, job_id=1).status for _ in range(3)]
    assert statuses == [JobStatus.DONE, JobStatus.ERROR, JobStatus.DONE]


def test_mock_sets_requested_job_id():
    tool = MockAnonClientTool(responses=[JobInfoFactory(job_id=5)])
    assert tool.get_job_info(RemoteAnonServerFactory(), job_id="42").job_id == 42


def test_mock_leaves_responses_unchanged():
    response = JobInfoFactory(job_id=5)
    tool = MockAnonClientTool(responses=[response])
    tool.cancel_job(RemoteAnonServerFactory(), job_id=42)
    assert response.job_id == 5
    assert response.status == JobStatus.DONE


def test_mock_default_response_realistic():
    info = MockAnonClientTool().get_job_info(RemoteAnonServerFactory(), job_id=1)
    assert isinstance(info, JobInfo)
    assert info.status in JobStatus.ALL
    assert info.source_path.startswith("\\\\")


def test_mock_job_info_list_ids():
    tool = MockAnonClientTool()
    infos = tool.get_job_info_list(RemoteAnonServerFactory(), ["3", "4"])
    assert [info.job_id for info in infos] == [3, 4]


def test_mock_cancel_sets_inactive():
    info = MockAnonClientTool().cancel_job(RemoteAnonServerFactory(), job_id=1)
    assert info.status == JobStatus.INACTIVE


def test_mock_records_calls():
    server = RemoteAnonServerFactory()
    tool = MockAnonClientTool()
    tool.reset_job(server, job_id=7)
    assert tool.calls == [("reset_job", server, 7)]


def test_mock_bulk_changes_send_nothing():
    server = RemoteAnonServerFactory()
    tool = MockAnonClientTool()
    result = reset_jobs(tool, server, ["1", "2"])
    assert sorted(result.succeeded) == ["1", "2"]
    assert all(info.status == JobStatus.ACTIVE for info in result.succeeded.values())
    assert sorted(job_id for _, _, job_id in tool.calls) == ["1", "2"]
    cancelled = tool.cancel_jobs(server, [3])
    assert cancelled.succeeded["3"].status == JobStatus.INACTIVE


def test_mock_create_gives_new_ids():
    tool = MockAnonClientTool(responses=[JobInfoFactory(job_id=10)])
    server = RemoteAnonServerFactory()
    first = tool.create_path_job(server, "P", r"\\h\s\a", r"\\h\s\out")
    second = tool.create_pacs_job(server, "P", "1.2.3", r"\\h\s\out")
    assert (first.job_id, second.job_id) == (11, 12)
    assert second.source_type == "WADO"


def test_factory_fields_override():
    info = JobInfoFactory(project_name="project1", destination_path="\\server\\share\\folder", priority=50)
    assert info.project_name == "project1"
    assert info.destination_path == "\\server\\share\\folder"
    assert info.priority == 50


def test_server_factory_unique_names():
    assert RemoteAnonServerFactory().name != RemoteAnonServerFactory().name
