"""Tests of DirectTransport: when WebAPIClient uses it, and that it sends and fails like requests."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from fakeserver import TOKEN, USER_NAME

from anonapi.client import AnonClientTool, WebAPIClient
from anonapi.exceptions import ServerNotReachableError
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobStatus
from anonapi.sandbox import Sandbox
from anonapi.transport import DirectTransport, encode_form

PROXY_VARIABLES = ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory):
    with Sandbox(data_dir=tmp_path_factory.mktemp("tls-data"), tls=True) as sandbox:
        yield sandbox


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def user_agent_of_last_call(fake_server) -> str:
    return fake_server.requests[-1].headers["User-Agent"]


# --- form encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"job_id": 7, "user_name": "demo"},
        {"job_ids": ["1", "2", "3"], "user_name": "demo"},
        {"error": " ", "status": "ACTIVE", "files_downloaded": 0},
        {"description": "é & = + / ?", "path": "\\\\server\\share\\a b"},
        {"flag": True, "ratio": 1.5, "empty": "", "left_out": None, "mixed": ["a", None, 2]},
        {"raw": b"\xff b", "tilde": "a~b.c-d_e"},
    ],
)
def test_encode_form_like_requests(data):
    expected = requests.Request("POST", "http://host/api", data=data).prepare().body
    assert encode_form(data).decode("ascii") == expected


# --- when the direct transport is used ------------------------------------------------------------


def test_client_uses_direct_transport(fake_server):
    WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs")
    assert user_agent_of_last_call(fake_server).startswith("anonapi/")


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@127.0.0.1:8000/api",
        "http://127.0.0.1:8000/api?key=value",
        "ftp://127.0.0.1/api",
        "http://[::1/api",
        "http://127.0.0.1:99999/api",
        "http://127.0.0.1:8000/a b",
        "http://sérveur/api",
        "127.0.0.1:8000/api",
    ],
)
def test_unusual_url_left_to_requests(url):
    assert DirectTransport.create(url, TOKEN, validate_https=True, max_idle_connections=4) is None


def test_plain_url_gets_transport():
    transport = DirectTransport.create("http://127.0.0.1:8000/api", TOKEN, True, 4)
    assert transport is not None


def test_proxy_left_to_requests(fake_server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs")
    assert user_agent_of_last_call(fake_server).startswith("python-requests/")


def test_no_proxy_list_alone_keeps_transport(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert DirectTransport.create("http://127.0.0.1:8000/api", TOKEN, True, 4) is not None


def test_missing_ca_bundle_left_to_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    assert DirectTransport.create("https://127.0.0.1:8443/api", TOKEN, True, 4) is None


def test_missing_ca_bundle_ignored_without_verification(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    assert DirectTransport.create("https://127.0.0.1:8443/api", TOKEN, False, 4) is not None


# --- responses ------------------------------------------------------------------------------------


def test_redirect_followed_by_requests(fake_server):
    fake_server.add_fault(status=302, body=b"", headers={"Location": f"{fake_server.url}/get_jobs"})
    jobs = WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs")
    assert set(jobs) == {"1", "2", "3"}
    assert user_agent_of_last_call(fake_server).startswith("python-requests/")


def test_gzip_body_decoded(fake_server):
    body = gzip.compress(json.dumps({"7": {"job_id": 7}}).encode("utf-8"))
    fake_server.add_fault(status=200, body=body, headers={"Content-Encoding": "gzip"})
    assert WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs") == {"7": {"job_id": 7}}


def test_connection_close_then_new_connection(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN)
    fake_server.add_fault(status=200, body=b'{"closing": true}', headers={"Connection": "close"})
    assert client.get("get_jobs") == {"closing": True}
    assert set(client.get("get_jobs")) == {"1", "2", "3"}


def test_successful_call_skips_requests_import(fake_server):
    script = (
        "import sys\n"
        "from anonapi.client import WebAPIClient\n"
        f"WebAPIClient({fake_server.url!r}, {USER_NAME!r}, {TOKEN!r}).get('get_jobs')\n"
        "print('requests' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )
    assert completed.stdout.strip() == "False"


# --- connections and failures ---------------------------------------------------------------------


def test_post_after_server_restart(sandbox):
    tool = AnonClientTool(sandbox.user_name, sandbox.token)
    server = RemoteAnonServer("sandbox", sandbox.url)
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job = sandbox.store.create_job(sandbox.user_name, {
        "project_name": sandbox.project_name, "source_type": "PATH", "source_path": "\\\\sandbox\\share\\study",
        "destination_type": "PATH", "destination_path": "\\\\sandbox\\share\\out",
    })
    tool.get_job_info(server, job["job_id"])
    # The restart closes the kept-alive connection. A POST is not retried, so
    # it only succeeds if the closed connection is noticed before sending.
    sandbox.restart()
    assert tool.cancel_job(server, job["job_id"]).status == JobStatus.INACTIVE


def test_refused_connection_error(monkeypatch):
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    client = WebAPIClient(f"http://127.0.0.1:{closed_port()}/api", USER_NAME, TOKEN, max_retries=1)
    with pytest.raises(ServerNotReachableError) as caught:
        client.get("get_jobs")
    assert "connection refused" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.exceptions.ConnectionError)


def test_untrusted_certificate_error(tls_sandbox, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = WebAPIClient(tls_sandbox.url, tls_sandbox.user_name, tls_sandbox.token)
    with pytest.raises(ServerNotReachableError) as caught:
        client.get("get_jobs")
    assert "certificate verify failed" in str(caught.value)
    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)


def test_ca_bundle_variable_trusted(tls_sandbox, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_sandbox.ca_bundle))
    client = WebAPIClient(tls_sandbox.url, tls_sandbox.user_name, tls_sandbox.token)
    assert isinstance(client.get("get_jobs"), dict)
    assert client._get_direct_transport() is not None


def test_verification_off_trusts_any_certificate(tls_sandbox, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = WebAPIClient(tls_sandbox.url, tls_sandbox.user_name, tls_sandbox.token, validate_https=False)
    assert isinstance(client.get("get_jobs"), dict)
