"""Tests of DirectTransport: when WebAPIClient uses it, and that it sends and fails like requests."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs

import pytest
import requests

from fakeserver import TOKEN, USER_NAME

from anonapi.client import AnonClientTool, WebAPIClient
from anonapi.exceptions import APIError, NoResponseError, ServerNotReachableError
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


# --- many calls from one thread -------------------------------------------------------------------


class RawServer:
    """Responds to requests on 127.0.0.1 with the bytes that ``respond(number, body)`` returns.

    ``number`` counts requests from 0 over all connections. None closes the
    connection without a response. A float makes the server wait that many
    seconds and then respond as for a plain JSON body. ``busiest`` is the most
    requests it was handling at the same time.
    """

    def __init__(self, respond):
        self.respond = respond
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api"
        self.lock = threading.Lock()
        self.received = 0
        self.in_progress = 0
        self.busiest = 0
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            self._answer_requests(connection)
        except OSError:
            pass  # the client closed the connection, for example after its read timeout

    def _answer_requests(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while True:
                while b"\r\n\r\n" not in buffer:
                    received = connection.recv(65536)
                    if not received:
                        return
                    buffer += received
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                with self.lock:
                    number = self.received
                    self.received += 1
                    self.in_progress += 1
                    self.busiest = max(self.busiest, self.in_progress)
                reply = self.respond(number, body)
                if isinstance(reply, float):
                    time.sleep(reply)
                    reply = json_reply({"slow": number})
                time.sleep(0.002)  # long enough for calls to overlap
                with self.lock:
                    self.in_progress -= 1
                if reply is None:
                    return
                connection.sendall(reply)
                if b"connection: close" in reply.lower() or b"content-length" not in reply.lower().split(b"\r\n\r\n")[0] \
                        and b"chunked" not in reply.lower():
                    return


def json_reply(content, extra: bytes = b"") -> bytes:
    body = json.dumps(content).encode("utf-8")
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body
    )


def echo_job_id(number: int, body: bytes) -> bytes:
    """Respond with the job_id of the request, in one of three framings."""
    job_id = parse_qs(body.decode("ascii"))["job_id"][0]
    content = json.dumps({"job_id": job_id}).encode("utf-8")
    if number % 3 == 0:
        half = len(content) // 2
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, content[:half], len(content) - half, content[half:])
        )
    if number % 3 == 1:
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + content
    return json_reply({"job_id": job_id})


@pytest.fixture
def raw_server(request):
    server = RawServer(request.param)
    yield server
    server.close()


def post_many(url: str, job_ids, max_in_flight: int = 4, timeout=(5.0, 60.0)):
    client = WebAPIClient(url, USER_NAME, TOKEN, timeout=timeout)
    return dict(client.post_many("cancel_job", ((job_id, {"job_id": job_id}) for job_id in job_ids), max_in_flight))


@pytest.mark.parametrize("raw_server", [echo_job_id], indirect=True)
def test_post_many_reads_every_framing(raw_server):
    job_ids = [str(number) for number in range(30)]
    results = post_many(raw_server.url, job_ids)
    assert results == {job_id: {"job_id": job_id} for job_id in job_ids}
    assert raw_server.busiest <= 4
    # Bodies that end with the connection need a new connection for the next call.
    assert 10 <= raw_server.connections <= 14


@pytest.mark.parametrize("raw_server", [lambda number, body: json_reply({"number": number})], indirect=True)
def test_post_many_keeps_to_max_in_flight(raw_server):
    results = post_many(raw_server.url, range(40), max_in_flight=3)
    assert len(results) == 40
    assert 2 <= raw_server.busiest <= 3
    assert raw_server.connections <= 3


@pytest.mark.parametrize(
    "raw_server", [lambda number, body: None if number == 3 else json_reply({"number": number})], indirect=True
)
def test_post_many_dropped_call_does_not_stop_others(raw_server):
    results = post_many(raw_server.url, range(10))
    failed = {key: value for key, value in results.items() if isinstance(value, Exception)}
    assert len(failed) == 1
    error = next(iter(failed.values()))
    assert isinstance(error, ServerNotReachableError)
    assert "closed the connection without a response" in str(error)
    assert sum(isinstance(value, dict) for value in results.values()) == 9


@pytest.mark.parametrize(
    "raw_server", [lambda number, body: 2.0 if number == 1 else json_reply({"number": number})], indirect=True
)
def test_post_many_read_timeout_fails_that_call(raw_server):
    results = post_many(raw_server.url, range(6), timeout=(5.0, 0.5))
    failed = [value for value in results.values() if isinstance(value, Exception)]
    assert len(failed) == 1
    assert "reading timed out after 0.5 s" in str(failed[0])
    assert sum(isinstance(value, dict) for value in results.values()) == 5


@pytest.mark.parametrize(
    "raw_server",
    [lambda number, body: json_reply({"number": number}, b"Content-Length: 3\r\n") if number == 2
     else json_reply({"number": number})],
    indirect=True,
)
def test_post_many_invalid_response_fails_that_call(raw_server):
    results = post_many(raw_server.url, range(5), max_in_flight=1)
    failed = [value for value in results.values() if isinstance(value, Exception)]
    assert len(failed) == 1
    assert "invalid Content-Length" in str(failed[0])


@pytest.mark.parametrize("raw_server", [lambda number, body: json_reply({"number": number})], indirect=True)
def test_closing_post_many_sends_no_more(raw_server):
    client = WebAPIClient(raw_server.url, USER_NAME, TOKEN)
    responses = client.post_many("cancel_job", ((number, {"job_id": number}) for number in range(100)), 4)
    next(responses)
    next(responses)
    responses.close()
    time.sleep(0.1)
    assert raw_server.received <= 2 + 4 + 1


def test_post_many_refused_connection():
    client = WebAPIClient(f"http://127.0.0.1:{closed_port()}/api", USER_NAME, TOKEN)
    key, error = next(client.post_many("cancel_job", [("7", {"job_id": 7})], 4))
    assert key == "7"
    assert isinstance(error, ServerNotReachableError)
    assert "connection refused" in str(error)


def test_post_many_redirect_followed_by_requests(fake_server):
    # Two redirect responses: to the first call, and to requests, which sends it again.
    fake_server.add_fault(count=2, status=307, body=b"", headers={"Location": f"{fake_server.url}/cancel_job"})
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN)
    results = dict(client.post_many("modify_job", [("1", {"job_id": 1, "status": "ACTIVE"})], 4))
    assert results["1"]["status"] == JobStatus.INACTIVE
    assert user_agent_of_last_call(fake_server).startswith("python-requests/")


def test_post_many_errors_per_call(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN)
    results = dict(client.post_many("cancel_job", [(job_id, {"job_id": job_id}) for job_id in ("1", "99", "2")], 4))
    assert results["1"]["status"] == JobStatus.INACTIVE
    assert isinstance(results["99"], APIError)
    assert results["2"]["job_id"] == 2


def test_post_many_same_key_twice(fake_server):
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN)
    outcomes = list(client.post_many("cancel_job", [("1", {"job_id": 1}), ("1", {"job_id": 1})], 4))
    assert [key for key, _ in outcomes] == ["1", "1"]


def test_post_many_proxy_uses_requests(fake_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN)
    results = dict(client.post_many("cancel_job", [(job_id, {"job_id": job_id}) for job_id in ("1", "2", "99")], 2))
    assert client._get_direct_transport() is None
    assert results["1"]["status"] == results["2"]["status"] == JobStatus.INACTIVE
    assert isinstance(results["99"], APIError)
    assert user_agent_of_last_call(fake_server).startswith("python-requests/")


def test_reset_jobs_over_tls(tls_sandbox, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_sandbox.ca_bundle))
    tls_sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    fields = {
        "project_name": tls_sandbox.project_name, "source_type": "PATH", "source_path": "\\\\sandbox\\share\\study",
        "destination_type": "PATH", "destination_path": "\\\\sandbox\\share\\out", "status": JobStatus.ERROR,
    }
    job_ids = [str(tls_sandbox.store.create_job(tls_sandbox.user_name, dict(fields))["job_id"]) for _ in range(60)]
    tool = AnonClientTool(tls_sandbox.user_name, tls_sandbox.token)
    done = []
    result = tool.reset_jobs(RemoteAnonServer("sandbox", tls_sandbox.url), job_ids + ["999999"], 8,
                             lambda job_id, error: done.append(job_id))
    assert sorted(result.succeeded) == sorted(job_ids)
    assert list(result.failed) == ["999999"]
    assert sorted(done) == sorted(job_ids + ["999999"])
    assert set(tls_sandbox.store.job_statuses([int(job_id) for job_id in job_ids]).values()) == {JobStatus.ACTIVE}
    assert all(info.status == JobStatus.ACTIVE for info in result.succeeded.values())


@pytest.mark.parametrize("raw_server", [lambda number, body: json_reply({"number": number})], indirect=True)
def test_post_many_slow_caller_gets_no_false_timeout(raw_server):
    client = WebAPIClient(raw_server.url, USER_NAME, TOKEN, timeout=(5.0, 0.3))
    results = {}
    for key, outcome in client.post_many("cancel_job", ((number, {"job_id": number}) for number in range(12)), 4):
        if not results:
            time.sleep(0.8)  # longer than the read timeout, while the other responses arrive
        results[key] = outcome
    assert all(isinstance(outcome, dict) for outcome in results.values())
    assert len(results) == 12


def close_every_second_call(number: int, body: bytes):
    """Respond to even calls; close the connection of odd ones without a response, as a server closing idle ones."""
    return None if number % 2 else json_reply({"job_id": parse_qs(body.decode("ascii"))["job_id"][0]})


@pytest.mark.parametrize("raw_server", [close_every_second_call], indirect=True)
def test_idempotent_call_sent_again_on_closed_connection(raw_server):
    client = WebAPIClient(raw_server.url, USER_NAME, TOKEN)
    calls = [(str(number), {"job_id": number}) for number in range(5)]
    results = dict(client.post_many("cancel_job", calls, 1, idempotent=True))
    assert results == {str(number): {"job_id": str(number)} for number in range(5)}
    assert raw_server.received == 9


@pytest.mark.parametrize("raw_server", [close_every_second_call], indirect=True)
def test_other_call_not_sent_again_on_closed_connection(raw_server):
    client = WebAPIClient(raw_server.url, USER_NAME, TOKEN)
    results = dict(client.post_many("cancel_job", [(str(number), {"job_id": number}) for number in range(4)], 1))
    failed = [key for key, value in results.items() if isinstance(value, Exception)]
    assert failed == ["1", "3"]
    assert all(isinstance(results[key], NoResponseError) for key in failed)
    assert raw_server.received == 4


@pytest.mark.parametrize(
    "raw_server", [lambda number, body: json_reply({"job_id": 12345, "status": "INACTIVE"})], indirect=True
)
def test_response_about_other_job_fails_that_job(raw_server):
    tool = AnonClientTool(USER_NAME, TOKEN)
    result = tool.cancel_jobs(RemoteAnonServer("raw", raw_server.url), ["7", "12345"])
    assert list(result.succeeded) == ["12345"]
    assert "is about job 12345" in str(result.failed["7"])


def test_tool_close_closes_kept_alive_connections(fake_server):
    with AnonClientTool(USER_NAME, TOKEN) as tool:
        server = RemoteAnonServer("fake", fake_server.url)
        tool.get_job_info(server, 1)
        transport = tool.get_client(fake_server.url)._get_direct_transport()
        assert len(transport._idle) == 1
    assert transport._idle == []


def test_post_many_proxy_dropped_call(fake_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    fake_server.add_fault(drop=True)
    client = WebAPIClient(fake_server.url, USER_NAME, TOKEN)
    results = dict(client.post_many("cancel_job", [(job_id, {"job_id": job_id}) for job_id in ("1", "2", "3")], 1))
    failed = [value for value in results.values() if isinstance(value, Exception)]
    assert len(failed) == 1
    assert isinstance(failed[0], NoResponseError)
    assert sum(isinstance(value, dict) for value in results.values()) == 2
