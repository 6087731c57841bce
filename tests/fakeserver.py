"""A small IDIS web API stand-in on 127.0.0.1 for client and command tests.

It responds with bodies in the format of the IDIS web API (the 400 error
bodies word for word as recorded from a real server), keeps its jobs in
memory so that cancel and reset change them, and can produce every status
code and fault the client must handle: 400, 401, 404 with and without
documentation, 405, 500, 502 to 504, bodies that are not JSON, slow
responses and dropped connections.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

TOKEN = "fake-token-0123456789abcdef"
USER_NAME = "z123sandbox"

DOCUMENTATION = "IDIS web API. Functions: get_jobs, get_job, get_jobs_list, get_jobs_list_extended, create_job, cancel_job, modify_job"

# Short job info with the fields and value types of the IDIS web API.
SHORT_INFO = {
    "job_id": 1,
    "date": "2019-11-26T16:34:07",
    "user_name": USER_NAME,
    "status": "DONE",
    "error": None,
    "description": "recorded job",
    "project_name": "Wetenschap-Algemeen",
    "priority": 0,
    "files_downloaded": 33,
    "files_processed": 33,
}

EXTENDED_FIELDS = {
    "destination_id": 41,
    "destination_name": None,
    "destination_path": "\\\\server\\share\\output",
    "destination_network": None,
    "destination_status": "BASE",
    "destination_type": "PATH",
    "source_id": 42,
    "source_instance_id": None,
    "source_status": "NEW",
    "source_type": "PATH",
    "source_anonymizedpatientid": "01",
    "source_anonymizedpatientname": "TEST_NAME_01",
    "source_pims_keyfile_id": None,
    "source_name": None,
    "source_path": "\\\\server\\share\\input",
    "source_protocol": 3,
    "source_subject": 9,
}

GET_FUNCTIONS = {"", "get_jobs", "get_job", "get_jobs_list", "get_jobs_list_extended"}
POST_FUNCTIONS = {"create_job", "cancel_job", "modify_job"}


class RecordedRequest:
    """One request as the server received it. ``form`` maps each field to all its values."""

    def __init__(self, method: str, function_name: str, headers: Dict[str, str], form: Dict[str, List[str]]):
        self.method = method
        self.function_name = function_name
        self.headers = headers
        self.form = form


class Fault:
    """What to send instead of the normal response: a status code, a delay, a raw body or a dropped connection."""

    def __init__(
        self,
        status: Optional[int] = None,
        body: Optional[bytes] = None,
        content_type: str = "application/json",
        delay: float = 0.0,
        drop: bool = False,
        headers: Optional[Dict[str, str]] = None,
    ):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body
        self.content_type = content_type
        self.delay = delay
        self.drop = drop


class FakeIDISServer:
    """An IDIS web API stand-in. Use as a context manager; ``url`` is its base URL."""

    def __init__(self, base_path: str = "/api", token: str = TOKEN, user_name: str = USER_NAME):
        self.base_path = base_path.rstrip("/")
        self.token = token
        self.user_name = user_name
        self.requests: List[RecordedRequest] = []
        self.jobs: Dict[int, Dict[str, Any]] = {}
        self.has_get_token = False
        self.password = "correct horse"
        self._faults: List[Fault] = []
        self._lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        for job_id, status in ((1, "DONE"), (2, "ERROR"), (3, "ACTIVE")):
            self.add_job(job_id, status=status)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"

    def add_job(self, job_id: int, **fields: Any) -> Dict[str, Any]:
        job = copy.deepcopy(SHORT_INFO)
        job.update(EXTENDED_FIELDS)
        job["job_id"] = job_id
        if fields.get("status") == "ERROR":
            job["error"] = "Error while pre-processing job: WadoWrapperException: Got HTTP error 404"
        job.update(fields)
        self.jobs[job_id] = job
        return job

    def add_fault(self, count: int = 1, **fault_arguments: Any) -> None:
        """Handle the next ``count`` requests with a Fault built from the arguments, instead of normally."""
        with self._lock:
            self._faults.extend(Fault(**fault_arguments) for _ in range(count))

    def calls_to(self, function_name: str) -> List[RecordedRequest]:
        return [request for request in self.requests if request.function_name == function_name]

    def __enter__(self) -> "FakeIDISServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def take_fault(self) -> Optional[Fault]:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def respond(self, request: RecordedRequest) -> Tuple[int, Any]:
        """Return (status, JSON body) for a request, following the contract."""
        name = request.function_name
        if name not in GET_FUNCTIONS | POST_FUNCTIONS | {"get_token"} or (name == "get_token" and not self.has_get_token):
            return 404, {"documentation": DOCUMENTATION, "404": f"Unknown function '{name}'"}
        expected_method = "GET" if name in GET_FUNCTIONS else "POST"
        if request.method != expected_method:
            return 405, {"detail": f"Method {request.method} not allowed"}
        if name == "get_token":
            return self._get_token(request)
        if request.headers.get("Authorization") != f"Token {self.token}" or request.form.get("user_name") != [self.user_name]:
            return 401, {"detail": "Invalid token."}
        if name == "":
            return 404, {"documentation": DOCUMENTATION, "404": "No function given"}
        return getattr(self, f"_{name}")(request.form)

    def _get_token(self, request: RecordedRequest) -> Tuple[int, Any]:
        if request.form.get("password") != [self.password] or request.form.get("user_name") != [self.user_name]:
            return 401, {"detail": "Invalid user name or password."}
        return 200, {"token": self.token}

    def _short(self, job: Dict[str, Any]) -> Dict[str, Any]:
        return {key: job[key] for key in SHORT_INFO}

    def _job_or_error(self, form: Dict[str, List[str]]) -> Tuple[Optional[Dict[str, Any]], Optional[Tuple[int, Any]]]:
        if "job_id" not in form:
            return None, (400, {"errors": {"job_id": "Required parameter job_id not supplied"}})
        job_id = form["job_id"][0]
        job = self.jobs.get(int(job_id)) if job_id.isdigit() else None
        if job is None:
            return None, (400, {"errors": {"job_id": f"Job with id {job_id} does not exist"}})
        return job, None

    def _get_jobs(self, form: Dict[str, List[str]]) -> Tuple[int, Any]:
        return 200, {str(job_id): self._short(job) for job_id, job in self.jobs.items()}

    def _get_job(self, form: Dict[str, List[str]]) -> Tuple[int, Any]:
        job, error = self._job_or_error(form)
        return error or (200, job)

    def _get_jobs_list(self, form: Dict[str, List[str]], extended: bool = False) -> Tuple[int, Any]:
        result = {}
        for job_id in form.get("job_ids", []):
            job = self.jobs.get(int(job_id)) if job_id.isdigit() else None
            if job is not None:
                result[job_id] = job if extended else self._short(job)
        return 200, result

    def _get_jobs_list_extended(self, form: Dict[str, List[str]]) -> Tuple[int, Any]:
        return self._get_jobs_list(form, extended=True)

    def _cancel_job(self, form: Dict[str, List[str]]) -> Tuple[int, Any]:
        job, error = self._job_or_error(form)
        if error:
            return error
        job["status"] = "INACTIVE"
        return 200, job

    def _modify_job(self, form: Dict[str, List[str]]) -> Tuple[int, Any]:
        job, error = self._job_or_error(form)
        if error:
            return error
        for key, values in form.items():
            if key in ("job_id", "user_name"):
                continue
            value: Any = values[0]
            if key in ("files_downloaded", "files_processed"):
                value = int(value)
            job[key] = value
        return 200, job

    def _create_job(self, form: Dict[str, List[str]]) -> Tuple[int, Any]:
        project = form.get("project_name", [""])[0]
        if project != "Wetenschap-Algemeen":
            return 400, {
                "errors": {
                    "AnonymizeInputException": f"given user_name `{self.user_name}` is not connected to given "
                    f"project_name {project}"
                }
            }
        job_id = max(self.jobs, default=0) + 1
        fields = {key: values[0] for key, values in form.items() if key != "user_name"}
        job = self.add_job(job_id, status="ACTIVE", files_downloaded=None, files_processed=None)
        job.update(
            source_type=fields.get("source_type"),
            source_path=fields.get("source_path"),
            source_name=fields.get("source_name"),
            source_instance_id=fields.get("source_instance_id"),
            destination_path=fields.get("destination_path"),
            source_anonymizedpatientname=fields.get("anonymizedpatientname"),
            source_anonymizedpatientid=fields.get("anonymizedpatientid"),
            source_pims_keyfile_id=fields.get("pims_keyfile_id"),
            description=fields.get("description"),
            project_name=project,
        )
        return 200, job


def _make_handler(server: FakeIDISServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            path = self.path.split("?", 1)[0]
            if not path.startswith(server.base_path + "/") and path != server.base_path:
                self._send(404, b"<html><body>Not Found</body></html>", "text/html")
                return
            function_name = path[len(server.base_path):].strip("/")
            request = RecordedRequest(
                method, function_name, dict(self.headers.items()), parse_qs(body, keep_blank_values=True)
            )
            server.requests.append(request)

            fault = server.take_fault()
            if fault is not None:
                if fault.delay:
                    threading.Event().wait(fault.delay)
                if fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.status is not None:
                    body = fault.body if fault.body is not None else b"{}"
                    self._send(fault.status, body, fault.content_type, fault.headers)
                    return

            status, payload = server.respond(request)
            self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

        def _send(self, status: int, body: bytes, content_type: str, headers: Optional[Dict[str, str]] = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                # The client gave up first, for example after its read timeout.
                self.close_connection = True

    return Handler


def unresponsive_port():
    """Return (socket, port) of a listening socket whose backlog is full, so new connections time out.

    The caller closes the socket.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    return listener, port, fillers
