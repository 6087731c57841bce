"""anonapi's own client against the sandbox: every AnonClientTool call and the errors it raises."""

from __future__ import annotations

import pytest

from anonapi.client import AnonClientTool, WebAPIClient
from anonapi.exceptions import (
    APIError,
    CredentialsRejectedError,
    ServerNotReachableError,
    UnexpectedResponseError,
    UnknownFunctionError,
    WrongMethodError,
)
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobStatus
from anonapi.sandbox.testdata import find_leaked_values, write_study

PROJECT = "Wetenschap-Algemeen"
OUTPUT = r"\\fileserver\output"


@pytest.fixture
def server(sandbox) -> RemoteAnonServer:
    return RemoteAnonServer("sandbox", sandbox.url)


@pytest.fixture
def tool(sandbox, monkeypatch) -> AnonClientTool:
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    return AnonClientTool(sandbox.user_name, sandbox.token)


def test_server_status_online(tool, server):
    assert tool.get_server_status(server).is_online


def test_documentation_lists_functions(tool, server):
    assert "create_job" in tool.get_client(server.url).get_documentation()


def test_path_job_end_to_end(sandbox, tool, server, tmp_path):
    study = write_study(tmp_path / "share" / "patient1", "PID-5001", "Visser^Dirk")
    info = tool.create_path_job(server, PROJECT, r"\\fileserver\share\patient1", OUTPUT,
                                anon_name="Study^001", anon_id="001", description="client test")
    sandbox.wait_for_jobs([info.job_id])
    done = tool.get_job_info(server, info.job_id)
    outputs = sorted((tmp_path / "output" / str(info.job_id)).glob("*.dcm"))
    assert done.status == JobStatus.DONE
    assert done.files_processed == 2
    assert find_leaked_values(outputs, study.values) == {}


def test_pacs_job_end_to_end(sandbox, tool, server, tmp_path):
    study = write_study(tmp_path / "pacs" / "s1", "PID-5002", accession_number="7654321.1")
    info = tool.create_pacs_job(server, PROJECT, "accession_number:7654321.1", OUTPUT,
                                anon_name="Study^002", anon_id="002",
                                sop_class_filter_list=["1.2.840.10008.5.1.4.1.1.4"])
    sandbox.wait_for_jobs([info.job_id])
    done = tool.get_job_info(server, info.job_id)
    assert done.status == JobStatus.DONE
    assert done.files_processed == 1


def test_job_info_list_many_ids(sandbox, tool, server):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    created = [tool.create_path_job(server, PROJECT, r"\\h\share\x", OUTPUT, "A", "A").job_id for _ in range(3)]
    infos = tool.get_job_info_list(server, created + list(range(100, 2600)), get_extended_info=True)
    assert [info.job_id for info in infos] == created


def test_get_jobs(sandbox, tool, server):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_id = tool.create_path_job(server, PROJECT, r"\\h\share\x", OUTPUT, "A", "A").job_id
    assert [info.job_id for info in tool.get_jobs(server)] == [job_id]


def test_cancel_job(sandbox, tool, server):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_id = tool.create_path_job(server, PROJECT, r"\\h\share\x", OUTPUT, "A", "A").job_id
    assert tool.cancel_job(server, job_id).status == JobStatus.INACTIVE


def test_reset_job_runs_again(sandbox, tool, server, tmp_path):
    job_id = tool.create_path_job(server, PROJECT, r"\\h\share\later", OUTPUT, "A", "A").job_id
    sandbox.wait_for_jobs([job_id])
    write_study(tmp_path / "share" / "later", "PID-5003")
    tool.reset_job(server, job_id)
    sandbox.wait_for_jobs([job_id])
    assert tool.get_job_info(server, job_id).status == JobStatus.DONE


def test_set_opt_out_ignore(sandbox, tool, server):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_id = tool.create_path_job(server, PROJECT, r"\\h\share\x", OUTPUT, "A", "A").job_id
    tool.set_opt_out_ignore(server, job_id, "consent signed")
    assert sandbox.get_job(job_id)["source_ignore_opt_out_reason"] == "Reason: consent signed"


def test_get_token(sandbox, server):
    token = AnonClientTool(sandbox.user_name, "").get_token(server, "demo")
    assert AnonClientTool(sandbox.user_name, token).get_server_status(server).is_online


def test_get_token_wrong_password(sandbox, server):
    with pytest.raises(CredentialsRejectedError):
        AnonClientTool(sandbox.user_name, "").get_token(server, "wrong")


def test_unknown_job_raises_api_error(tool, server):
    with pytest.raises(APIError) as caught:
        tool.get_job_info(server, 424242)
    assert caught.value.errors == {"job_id": "Job with id 424242 does not exist"}


def test_wrong_token_raises_credentials_rejected(sandbox, server):
    with pytest.raises(CredentialsRejectedError):
        AnonClientTool(sandbox.user_name, "wrong").get_jobs(server)


def test_unknown_function_raises(tool, server):
    with pytest.raises(UnknownFunctionError):
        tool.get_client(server.url).get("no_such_function")


def test_wrong_method_raises(tool, server):
    with pytest.raises(WrongMethodError):
        tool.get_client(server.url).post("get_jobs")


def test_unconnected_project_raises_api_error(tool, server):
    with pytest.raises(APIError) as caught:
        tool.create_path_job(server, "someproject", r"\\h\share\x", OUTPUT, "A", "A")
    assert "AnonymizeInputException" in caught.value.errors


def test_get_retried_after_503(sandbox, tool, server):
    sandbox.faults.fail_next(2, status=503)
    assert len(tool.get_jobs(server)) == 0


def test_post_not_retried_after_503(sandbox, tool, server):
    sandbox.faults.fail_next(1, status=503)
    with pytest.raises(UnexpectedResponseError):
        tool.create_path_job(server, PROJECT, r"\\h\share\x", OUTPUT, "A", "A")


def test_get_retried_after_dropped_connection(sandbox, tool, server):
    sandbox.faults.drop_next(1)
    assert len(tool.get_jobs(server)) == 0


def test_dropped_connections_exhaust_retries(sandbox, tool, server):
    sandbox.faults.drop_next(10)
    with pytest.raises(ServerNotReachableError):
        tool.get_jobs(server)


def test_500_raises_unexpected_response(sandbox, tool, server):
    sandbox.faults.fail_next(1, status=500)
    with pytest.raises(UnexpectedResponseError):
        tool.get_jobs(server)
