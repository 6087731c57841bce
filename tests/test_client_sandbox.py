"""Tests of the client, the client tool and the server, job and settings commands against the sandbox server."""

from __future__ import annotations

import json

import pytest
import yaml

from anonapi.client import AnonClientTool, WebAPIClient
from anonapi.exceptions import (
    APIError,
    CredentialsRejectedError,
    NotAnAPIError,
    ServerNotReachableError,
    UnexpectedResponseError,
    UnknownFunctionError,
)
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobStatus

SANDBOX_PASSWORD = "demo"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)


@pytest.fixture
def client(sandbox) -> WebAPIClient:
    return WebAPIClient(sandbox.url, sandbox.user_name, sandbox.token)


@pytest.fixture
def tool(sandbox) -> AnonClientTool:
    return AnonClientTool(sandbox.user_name, sandbox.token)


@pytest.fixture
def server(sandbox) -> RemoteAnonServer:
    return RemoteAnonServer("sandbox", sandbox.url)


@pytest.fixture
def held_jobs(sandbox, tool, server, tmp_path):
    """Three PATH jobs that stay ACTIVE, because the sandbox's worker is held."""
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    # The sandbox fixture serves tmp_path/"share" as \\sandbox\share.
    (tmp_path / "share" / "study").mkdir(exist_ok=True)
    return [
        tool.create_path_job(
            server, sandbox.project_name, r"\\sandbox\share\study", r"\\sandbox\output\out", anon_name="P", anon_id="1"
        ).job_id
        for _ in range(3)
    ]


# --- WebAPIClient -----------------------------------------------------------------------------


def test_sandbox_documentation(client):
    assert client.get_documentation()


def test_sandbox_get_jobs(client):
    assert isinstance(client.get("get_jobs"), dict)


def test_sandbox_unknown_job(client):
    with pytest.raises(APIError) as caught:
        client.get("get_job", job_id=447783)
    assert caught.value.errors == {"job_id": "Job with id 447783 does not exist"}


def test_sandbox_wrong_token(sandbox):
    client = WebAPIClient(sandbox.url, sandbox.user_name, "wrong-token")
    with pytest.raises(CredentialsRejectedError):
        client.get("get_jobs")


def test_sandbox_unknown_function(client):
    with pytest.raises(UnknownFunctionError):
        client.get("no_such_function")


def test_sandbox_wrong_base_path(sandbox):
    client = WebAPIClient(sandbox.url.replace("/sandbox", "/elsewhere"), sandbox.user_name, sandbox.token)
    with pytest.raises(NotAnAPIError):
        client.get("get_jobs")


def test_sandbox_get_retried_after_503(client, sandbox):
    sandbox.faults.fail_next(2, status=503)
    assert isinstance(client.get("get_jobs"), dict)


def test_sandbox_get_retried_after_drop(client, sandbox):
    sandbox.faults.drop_next(2)
    assert isinstance(client.get("get_jobs"), dict)


def test_sandbox_500(client, sandbox):
    sandbox.faults.fail_next(1, status=500)
    with pytest.raises(UnexpectedResponseError) as caught:
        client.get("get_jobs")
    assert caught.value.status_code == 500


def test_sandbox_post_not_retried(tool, server, sandbox, held_jobs):
    sandbox.faults.drop_next(1)
    with pytest.raises(ServerNotReachableError):
        tool.cancel_job(server, held_jobs[0])
    assert sandbox.get_job(held_jobs[0])["status"] == JobStatus.ACTIVE


def test_sandbox_read_timeout(sandbox):
    client = WebAPIClient(sandbox.url, sandbox.user_name, sandbox.token, timeout=(5.0, 0.2), max_retries=0)
    sandbox.faults.delay_next(1, seconds=1.0)
    with pytest.raises(ServerNotReachableError) as caught:
        client.get("get_jobs")
    assert "reading timed out" in str(caught.value)


# --- AnonClientTool -----------------------------------------------------------------------------


def test_sandbox_server_status(tool, server):
    assert tool.get_server_status(server).is_online


def test_sandbox_create_and_info(tool, server, held_jobs):
    info = tool.get_job_info(server, held_jobs[0])
    assert info.status == JobStatus.ACTIVE
    assert info.source_type == "PATH"


def test_sandbox_job_info_list(tool, server, held_jobs):
    infos = tool.get_job_info_list(server, [held_jobs[2], 999999, held_jobs[0]])
    assert [info.job_id for info in infos] == [held_jobs[2], held_jobs[0]]


def test_sandbox_cancel_and_reset(tool, server, sandbox, held_jobs):
    tool.cancel_job(server, held_jobs[0])
    assert sandbox.get_job(held_jobs[0])["status"] == JobStatus.INACTIVE
    tool.reset_job(server, held_jobs[0])
    assert sandbox.get_job(held_jobs[0])["status"] == JobStatus.ACTIVE


def test_sandbox_create_pacs_job(tool, server, sandbox):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    info = tool.create_pacs_job(server, sandbox.project_name, "1.2.840.99999.1", r"\\sandbox\output\out",
                                anon_name="P", anon_id="1")
    assert info.source_type == "WADO"
    assert info.source_instance_id == "1.2.840.99999.1"


def test_sandbox_project_not_connected(tool, server, sandbox):
    with pytest.raises(APIError):
        tool.create_path_job(server, "someproject", r"\\sandbox\share", r"\\sandbox\output\out", anon_name="P",
                             anon_id="1")


def test_sandbox_get_token(sandbox, server):
    tool = AnonClientTool(sandbox.user_name, "")
    token = tool.get_token(server, SANDBOX_PASSWORD)
    assert WebAPIClient(sandbox.url, sandbox.user_name, token).get("get_jobs") is not None


# --- commands -------------------------------------------------------------------------------------


def test_sandbox_cli_server_status(run_anon, anon_settings):
    result = run_anon("server", "status")
    assert result.exit_code == 0
    assert "OK" in result.stdout


def test_sandbox_cli_jobs_json(run_anon, anon_settings, held_jobs):
    result = run_anon("server", "jobs", "-o", "json")
    assert sorted(job["job_id"] for job in json.loads(result.stdout))[-3:] == sorted(held_jobs)


def test_sandbox_cli_job_info(run_anon, anon_settings, held_jobs):
    result = run_anon("job", "info", str(held_jobs[0]))
    assert result.exit_code == 0
    assert f"job {held_jobs[0]} on sandbox:" in result.stdout


def test_sandbox_cli_cancel_range(run_anon, anon_settings, sandbox, held_jobs):
    result = run_anon("job", "cancel", "-y", f"{held_jobs[0]}-{held_jobs[2]}")
    assert result.exit_code == 0
    assert [sandbox.get_job(job_id)["status"] for job_id in held_jobs] == [JobStatus.INACTIVE] * 3


def test_sandbox_cli_reset_partial_failure(run_anon, anon_settings, sandbox, held_jobs):
    run_anon("job", "cancel", "-y", str(held_jobs[0]))
    result = run_anon("job", "reset", "-y", str(held_jobs[0]), "999999")
    assert result.exit_code == 1
    assert sandbox.get_job(held_jobs[0])["status"] == JobStatus.ACTIVE
    assert "Error: job 999999 not found on sandbox." in result.stderr


def test_sandbox_cli_get_token(run_anon, anon_settings, sandbox):
    settings = yaml.safe_load(anon_settings.read_text())
    settings["user_token"] = ""
    anon_settings.write_text(yaml.safe_dump(settings))
    result = run_anon("settings", "user", "get-token", input=f"{SANDBOX_PASSWORD}\n")
    assert result.exit_code == 0
    assert run_anon("server", "jobs").exit_code == 0


def test_sandbox_cli_wrong_token(run_anon, anon_settings):
    run_anon("settings", "user", "set-token", input="not-the-token\n")
    result = run_anon("server", "jobs")
    assert result.exit_code == 1
    assert "anon settings user set-token" in result.stderr
