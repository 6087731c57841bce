"""Tests of WebAPIClient and AnonClientTool over real HTTP against a local fake IDIS server."""

from __future__ import annotations

import socket

import pytest
import requests

from fakeserver import TOKEN, USER_NAME, unresponsive_port

from anonapi import client as client_module
from anonapi.client import AnonClientTool, WebAPIClient, describe_connection_error, mask_url
from anonapi.exceptions import (
    AnonAPIError,
    APIError,
    ConfigurationError,
    CredentialsRejectedError,
    NotAnAPIError,
    ServerNotReachableError,
    UnexpectedResponseError,
    UnknownFunctionError,
    WrongMethodError,
)
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobInfo, JobStatus


@pytest.fixture
def client(fake_server) -> WebAPIClient:
    return WebAPIClient(fake_server.url, USER_NAME, TOKEN)


@pytest.fixture
def server(fake_server) -> RemoteAnonServer:
    return RemoteAnonServer("fake", fake_server.url)


@pytest.fixture
def tool() -> AnonClientTool:
    return AnonClientTool(USER_NAME, TOKEN)


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- requests as the contract describes them --------------------------------------------


def test_get_sends_token_header(client, fake_server):
    client.get("get_jobs")
    assert fake_server.requests[-1].headers["Authorization"] == f"Token {TOKEN}"


def test_get_adds_user_name(client, fake_server):
    client.get("get_jobs")
    assert fake_server.requests[-1].form["user_name"] == [USER_NAME]


def test_get_keeps_given_user_name(client, fake_server):
    with pytest.raises(CredentialsRejectedError):
        client.get("get_jobs", user_name="someone_else")
    assert fake_server.requests[-1].form["user_name"] == ["someone_else"]


def test_get_sends_form_encoded_body(client, fake_server):
    client.get("get_job", job_id=2)
    request = fake_server.requests[-1]
    assert request.method == "GET"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form["job_id"] == ["2"]


def test_list_argument_sent_as_repeated_field(client, fake_server):
    client.get("get_jobs_list", job_ids=[1, 2, 3])
    assert fake_server.requests[-1].form["job_ids"] == ["1", "2", "3"]


def test_post_sends_form_encoded_body(client, fake_server):
    client.post("cancel_job", job_id=3)
    request = fake_server.requests[-1]
    assert request.method == "POST"
    assert request.form["job_id"] == ["3"]


def test_get_returns_json(client):
    assert set(client.get("get_jobs")) == {"1", "2", "3"}


def test_base_url_with_trailing_slash(fake_server):
    client = WebAPIClient(fake_server.url + "/", USER_NAME, TOKEN)
    client.get("get_jobs")
    assert fake_server.requests[-1].function_name == "get_jobs"


def test_session_reused_between_calls(client):
    client.get("get_jobs")
    first_session = client._get_session()
    client.get("get_jobs")
    assert client._get_session() is first_session


def test_get_documentation(client):
    assert client.get_documentation().startswith("IDIS web API")


def test_get_documentation_not_an_api(fake_server):
    client = WebAPIClient(fake_server.url.replace("/api", "/elsewhere"), USER_NAME, TOKEN)
    with pytest.raises(NotAnAPIError):
        client.get_documentation()


# --- status codes ---------------------------------------------------------------------------


def test_400_raises_api_error_with_errors(client):
    with pytest.raises(APIError) as caught:
        client.get("get_job", job_id=447783)
    assert caught.value.errors == {"job_id": "Job with id 447783 does not exist"}
    assert "Job with id 447783 does not exist" in str(caught.value)


def test_400_missing_parameter(client):
    with pytest.raises(APIError) as caught:
        client.get("get_job")
    assert caught.value.errors == {"job_id": "Required parameter job_id not supplied"}


def test_400_not_json(client, fake_server):
    fake_server.add_fault(status=400, body=b"Bad Request", content_type="text/plain")
    with pytest.raises(NotAnAPIError):
        client.get("get_jobs")


def test_401_raises_credentials_rejected(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, "wrong-token")
    with pytest.raises(CredentialsRejectedError) as caught:
        client.get("get_jobs")
    assert USER_NAME in str(caught.value)


def test_401_message_hides_token(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, "distinctive-secret-4711")
    with pytest.raises(CredentialsRejectedError) as caught:
        client.get("get_jobs")
    assert "distinctive-secret-4711" not in str(caught.value)


def test_404_with_documentation_raises_unknown_function(client):
    with pytest.raises(UnknownFunctionError) as caught:
        client.get("no_such_function")
    assert caught.value.documentation.startswith("IDIS web API")
    assert "no_such_function" in str(caught.value)


def test_404_without_documentation_raises_not_an_api(fake_server):
    client = WebAPIClient(fake_server.url.replace("/api", "/elsewhere"), USER_NAME, TOKEN)
    with pytest.raises(NotAnAPIError) as caught:
        client.get("get_jobs")
    assert "/elsewhere/get_jobs" in str(caught.value)


def test_404_json_without_documentation(client, fake_server):
    fake_server.add_fault(status=404, body=b'{"detail": "Not found"}')
    with pytest.raises(NotAnAPIError):
        client.get("get_jobs")


def test_200_not_json_raises_not_an_api(client, fake_server):
    fake_server.add_fault(status=200, body=b"<html>login page</html>", content_type="text/html")
    with pytest.raises(NotAnAPIError) as caught:
        client.get("get_jobs")
    assert "text/html" in str(caught.value)


def test_200_json_list_raises_not_an_api(client, fake_server):
    fake_server.add_fault(status=200, body=b"[1, 2]")
    with pytest.raises(NotAnAPIError):
        client.get("get_jobs")


def test_405_raises_wrong_method(client):
    with pytest.raises(WrongMethodError) as caught:
        client.post("get_jobs")
    assert "POST" in str(caught.value)


def test_500_raises_unexpected_response(client, fake_server):
    fake_server.add_fault(status=500, body=b"oops", content_type="text/plain")
    with pytest.raises(UnexpectedResponseError) as caught:
        client.get("get_jobs")
    assert caught.value.status_code == 500
    assert caught.value.reason == "Internal Server Error"
    assert caught.value.url == f"{fake_server.url}/get_jobs"
    assert "500" in str(caught.value)


def test_500_not_retried(client, fake_server):
    fake_server.add_fault(status=500)
    with pytest.raises(UnexpectedResponseError):
        client.get("get_jobs")
    assert len(fake_server.requests) == 1


def test_every_error_is_anonapi_error(client, fake_server):
    fake_server.add_fault(status=418)
    with pytest.raises(AnonAPIError):
        client.get("get_jobs")


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_get_retried_after_gateway_status(client, fake_server, status):
    fake_server.add_fault(count=2, status=status)
    assert set(client.get("get_jobs")) == {"1", "2", "3"}
    assert len(fake_server.requests) == 3


def test_get_retries_bounded(client, fake_server):
    fake_server.add_fault(count=10, status=503)
    with pytest.raises(UnexpectedResponseError) as caught:
        client.get("get_jobs")
    assert caught.value.status_code == 503
    assert len(fake_server.requests) == 1 + client.max_retries


def test_get_retried_after_dropped_connection(client, fake_server):
    fake_server.add_fault(count=2, drop=True)
    assert set(client.get("get_jobs")) == {"1", "2", "3"}
    assert len(fake_server.requests) == 3


def test_post_not_retried_after_gateway_status(client, fake_server):
    fake_server.add_fault(status=503)
    with pytest.raises(UnexpectedResponseError):
        client.post("cancel_job", job_id=1)
    assert len(fake_server.requests) == 1


def test_post_not_retried_after_dropped_connection(client, fake_server):
    fake_server.add_fault(drop=True)
    with pytest.raises(ServerNotReachableError) as caught:
        client.post("create_job", project_name="Wetenschap-Algemeen")
    assert len(fake_server.requests) == 1
    assert "closed the connection" in str(caught.value)


def test_max_retries_zero(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN, max_retries=0)
    fake_server.add_fault(status=502)
    with pytest.raises(UnexpectedResponseError):
        client.get("get_jobs")
    assert len(fake_server.requests) == 1


# --- unreachable servers ----------------------------------------------------------------------


def test_connection_refused(monkeypatch):
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    url = f"http://127.0.0.1:{closed_port()}/api"
    client = WebAPIClient(url, USER_NAME, TOKEN)
    with pytest.raises(ServerNotReachableError) as caught:
        client.get("get_jobs")
    assert "connection refused" in str(caught.value)
    assert f"{url}/get_jobs" in str(caught.value)


def test_connect_timeout():
    listener, port, fillers = unresponsive_port()
    try:
        client = WebAPIClient(f"http://127.0.0.1:{port}/api", USER_NAME, TOKEN, timeout=(0.2, 5.0), max_retries=0)
        with pytest.raises(ServerNotReachableError) as caught:
            client.get("get_jobs")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert "connecting timed out after 0.2 s" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.exceptions.ConnectTimeout)


def test_read_timeout(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN, timeout=(5.0, 0.2))
    fake_server.add_fault(delay=2.0, status=200)
    with pytest.raises(ServerNotReachableError) as caught:
        client.get("get_jobs")
    assert "reading timed out after 0.2 s" in str(caught.value)


def test_read_timeout_not_retried(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN, timeout=(5.0, 0.2))
    fake_server.add_fault(delay=2.0, status=200)
    with pytest.raises(ServerNotReachableError):
        client.get("get_jobs")
    assert len(fake_server.requests) == 1


def test_invalid_url_raises_configuration_error():
    client = WebAPIClient("not a url", USER_NAME, TOKEN)
    with pytest.raises(ConfigurationError):
        client.get("get_jobs")


@pytest.mark.parametrize(
    "cause, expected",
    [
        (OSError("[Errno -2] Name or service not known"), "host name not known"),
        (OSError("[Errno 8] nodename nor servname provided, or not known"), "host name not known"),
        (OSError("[Errno 11001] getaddrinfo failed"), "host name not known"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (ConnectionResetError(104, "Connection reset by peer"), "closed the connection"),
    ],
)
def test_describe_connection_error(cause, expected):
    error = requests.exceptions.ConnectionError(cause)
    assert expected in describe_connection_error(error)


def test_mask_url_hides_password():
    assert mask_url("https://user:secret@host:8443/api") == "https://***@host:8443/api"


def test_mask_url_keeps_plain_url():
    assert mask_url("https://host/api") == "https://host/api"


def test_client_str_hides_token():
    client = WebAPIClient("https://host/api", USER_NAME, "distinctive-secret-4711")
    assert "distinctive-secret-4711" not in str(client) + repr(client)


# --- AnonClientTool -------------------------------------------------------------------------


def test_tool_server_status_online(tool, server):
    status = tool.get_server_status(server)
    assert status.is_online


def test_tool_server_status_unreachable(tool, monkeypatch):
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    server = RemoteAnonServer("down", f"http://127.0.0.1:{closed_port()}/api")
    status = tool.get_server_status(server)
    assert not status.is_online
    assert "connection refused" in status.message


def test_tool_server_status_not_an_api(tool, fake_server):
    status = tool.get_server_status(RemoteAnonServer("wrong", fake_server.url.replace("/api", "/x")))
    assert not status.is_online
    assert "not an IDIS web API" in status.message


def test_tool_get_client_cached(tool, server):
    assert tool.get_client(server.url) is tool.get_client(server.url)


def test_tool_get_job_info(tool, server):
    info = tool.get_job_info(server, 2)
    assert info.job_id == 2
    assert info.status == JobStatus.ERROR
    assert info.source_anonymizedpatientname == "TEST_NAME_01"


def test_tool_get_job_info_unknown_id(tool, server):
    with pytest.raises(APIError):
        tool.get_job_info(server, 999)


def test_tool_get_job_info_list_leaves_out_unknown(tool, server):
    infos = tool.get_job_info_list(server, ["3", "999", "1"])
    assert [info.job_id for info in infos] == [3, 1]


def test_tool_get_job_info_list_short(tool, server):
    infos = tool.get_job_info_list(server, [1])
    assert infos[0].source_path is None


def test_tool_get_job_info_list_extended(tool, server, fake_server):
    infos = tool.get_job_info_list(server, [1], get_extended_info=True)
    assert infos[0].source_path == "\\\\server\\share\\input"
    assert fake_server.requests[-1].function_name == "get_jobs_list_extended"


def test_tool_get_job_info_list_in_chunks(tool, server, fake_server, monkeypatch):
    monkeypatch.setattr(client_module, "JOB_IDS_PER_REQUEST", 2)
    for job_id in range(4, 10):
        fake_server.add_job(job_id)
    infos = tool.get_job_info_list(server, [str(job_id) for job_id in range(9, 0, -1)])
    assert [info.job_id for info in infos] == list(range(9, 0, -1))
    assert len(fake_server.calls_to("get_jobs_list")) == 5


def test_tool_get_job_info_list_empty(tool, server, fake_server):
    assert len(tool.get_job_info_list(server, [])) == 0
    assert fake_server.requests == []


def test_tool_get_jobs_newest_first(tool, server):
    assert [info.job_id for info in tool.get_jobs(server)] == [3, 2, 1]


def test_tool_cancel_job(tool, server, fake_server):
    info = tool.cancel_job(server, 3)
    assert info.status == JobStatus.INACTIVE
    assert fake_server.jobs[3]["status"] == "INACTIVE"


def test_tool_reset_job_sends_contract_fields(tool, server, fake_server):
    tool.reset_job(server, 2)
    form = fake_server.calls_to("modify_job")[-1].form
    assert form["status"] == ["ACTIVE"]
    assert form["files_downloaded"] == ["0"]
    assert form["files_processed"] == ["0"]
    assert form["error"] == [" "]


def test_tool_reset_job_returns_info(tool, server):
    info = tool.reset_job(server, 2)
    assert info.status == JobStatus.ACTIVE
    assert not info.has_error


def test_tool_set_opt_out_ignore(tool, server, fake_server):
    tool.set_opt_out_ignore(server, 1, "consent form 12 signed")
    form = fake_server.calls_to("modify_job")[-1].form
    assert form["source_ignore_opt_out"] == ["True"]
    assert form["source_ignore_opt_out_reason"] == ["Reason: consent form 12 signed"]


def test_tool_create_path_job(tool, server, fake_server):
    info = tool.create_path_job(
        server, "Wetenschap-Algemeen", r"\\host\share\in", r"\\host\share\out", anon_name="P01", anon_id="01"
    )
    form = fake_server.calls_to("create_job")[-1].form
    assert isinstance(info, JobInfo)
    assert info.job_id == 4
    assert form["source_type"] == ["PATH"]
    assert form["source_path"] == [r"\\host\share\in"]
    assert form["destination_type"] == ["PATH"]
    assert form["anonymizedpatientname"] == ["P01"]
    assert "pims_keyfile_id" not in form


def test_tool_create_pacs_job(tool, server, fake_server):
    tool.create_pacs_job(
        server,
        "Wetenschap-Algemeen",
        "1.2.840.1234",
        r"\\host\share\out",
        pims_keyfile_id="PIMS1",
        sop_class_filter_list=["1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.7"],
    )
    form = fake_server.calls_to("create_job")[-1].form
    assert form["source_type"] == ["WADO"]
    assert form["source_name"] == ["IDC_WADO"]
    assert form["source_instance_id"] == ["1.2.840.1234"]
    assert form["source_sop_class_filter_list"] == ["1.2.840.10008.5.1.4.1.1.88.67,1.2.840.10008.5.1.4.1.1.7"]
    assert form["pims_keyfile_id"] == ["PIMS1"]


def test_tool_create_job_project_rejected(tool, server):
    with pytest.raises(APIError) as caught:
        tool.create_path_job(server, "someproject", r"\\h\s\in", r"\\h\s\out")
    assert "AnonymizeInputException" in caught.value.errors


def test_tool_get_token(tool, server, fake_server):
    fake_server.has_get_token = True
    assert tool.get_token(server, fake_server.password) == TOKEN


def test_tool_get_token_wrong_password(tool, server, fake_server):
    fake_server.has_get_token = True
    with pytest.raises(CredentialsRejectedError):
        tool.get_token(server, "wrong")


def test_tool_get_token_unknown_function(tool, server):
    with pytest.raises(UnknownFunctionError):
        tool.get_token(server, "anything")


def test_tool_get_token_post_not_logged(tool, server, fake_server, caplog):
    fake_server.has_get_token = True
    caplog.set_level("DEBUG")
    tool.get_token(server, fake_server.password)
    assert fake_server.password not in caplog.text
    assert TOKEN not in caplog.text
