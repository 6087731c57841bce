"""The Starlette application that serves the sandbox API under a base path."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any, Callable, Dict, List, NamedTuple, Optional
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, Router

from anonapi.sandbox.api import (
    FUNCTIONS,
    ApiError,
    AuthenticationError,
    Function,
    Params,
    SandboxApi,
    documentation_text,
)
from anonapi.sandbox.faults import ADMIN_SECRET_HEADER, Faults

logger = logging.getLogger(__name__)

ADMIN_FUNCTION = "_sandbox/faults"

# Calls with more job ids than this run in a worker thread, so that they do not
# block the event loop, which serves every connection. A get_jobs_list of
# 10,000 ids takes a tenth of a second or more.
MAX_INLINE_JOB_IDS = 500

# Every route accepts every method, so that a wrong method gets the API's own 405 response.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class ClientGone(Exception):
    """The client closed the connection before its request body arrived."""


class Reply(NamedTuple):
    """A JSON response to send: status code, the JSON content, and extra header fields."""

    status: int
    content: Any
    headers: Dict[str, str] = {}


async def read_params(scope: Dict[str, Any], receive: Callable) -> Params:
    """Return the query string and form-encoded body fields, for GET as well as POST.

    The body is parsed here instead of with Starlette's ``request.form()``,
    which limits the number of fields to 1000 where get_jobs_list may get
    10,000 job ids, and costs more per call.

    :raises ClientGone: if the client disconnected before the body arrived
    """
    params: Params = {}
    query = scope.get("query_string")
    if query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            params.setdefault(name, []).append(value)
    if header_value(scope, b"content-type").startswith("multipart/form-data"):
        form = await Request(scope, receive).form(max_fields=100_000)
        for name, value in form.multi_items():
            params.setdefault(name, []).append(str(value))
        return params
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if body:
        text = body.decode("utf-8", errors="replace")
        for name, value in parse_qsl(text, keep_blank_values=True):
            params.setdefault(name, []).append(value)
    return params


def header_value(scope: Dict[str, Any], name: bytes) -> str:
    """Return the first value of the header field ``name`` (lower case) of a request, or ""."""
    for field_name, value in scope["headers"]:
        if field_name == name:
            return value.decode("latin-1")
    return ""


async def send_json(send: Callable, reply: Reply) -> None:
    """Send ``reply`` as Starlette's JSONResponse would, without building one for every call."""
    body = json.dumps(
        reply.content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")
    headers = [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", b"application/json")]
    headers.extend((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items())
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def count_job_ids(params: Params) -> int:
    """Return how many job ids a call carries, in repeated or comma-separated fields."""
    return sum(value.count(",") + 1 for value in params.get("job_ids", ()))


def not_found_with_documentation(function_name: str) -> Reply:
    if function_name:
        sentence = f"Function '{function_name}' does not exist on this API. See 'documentation'."
    else:
        sentence = "No function given. Add a function name to the URL, see 'documentation'."
    return Reply(404, {"documentation": documentation_text(), "404": sentence})


def token_from_header(scope: Dict[str, Any]) -> Optional[str]:
    scheme, _, token = header_value(scope, b"authorization").partition(" ")
    if scheme.lower() != "token":
        return None
    return token.strip() or None


class SandboxApplication:
    """Build the Starlette app: API functions below ``base_path`` and the admin function."""

    def __init__(
        self,
        api: SandboxApi,
        faults: Faults,
        base_path: str = "/sandbox",
        admin_secret: Optional[str] = None,
    ):
        self.api = api
        self.faults = faults
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.admin_secret = admin_secret

    def build(self) -> Callable:
        base = self.base_path
        # The path converter also matches an empty function name ("<base>/").
        endpoint = ApiEndpoint(self)
        routes = [Route(f"{base}/{{function:path}}", endpoint, methods=ALL_METHODS)]
        if base:
            routes.insert(0, Route(base, endpoint, methods=ALL_METHODS))
        # A bare Router, without the error and exception middleware that
        # Starlette() adds: the handlers respond to every error of the API
        # themselves, uvicorn responds to anything else with a 500, and each
        # middleware layer costs CPU time on every call.
        app = Router(routes=routes)
        return FaultMiddleware(app, self.faults, f"{base}/{ADMIN_FUNCTION}")

    async def respond(self, scope: Dict[str, Any], receive: Callable) -> Reply:
        function_name = scope.get("path_params", {}).get("function", "").strip("/")
        if function_name == ADMIN_FUNCTION:
            return await self.respond_admin(scope, receive)
        function = FUNCTIONS.get(function_name)
        if function is None:
            return not_found_with_documentation(function_name)
        method = scope["method"]
        if method != function.method:
            return Reply(
                405,
                {"detail": f'Method "{method}" not allowed; {function_name} needs {function.method}.'},
                {"Allow": function.method},
            )

        params = await read_params(scope, receive)
        token = token_from_header(scope)
        try:
            # A hop to a worker thread and back costs more than the SQLite
            # calls of most functions, so only slow calls take it.
            if function.slow or count_job_ids(params) > MAX_INLINE_JOB_IDS:
                result = await run_in_threadpool(self.call_function, function, params, token)
            else:
                result = self.call_function(function, params, token)
        except AuthenticationError as error:
            logger.warning("Rejected %s from %s with 401: %s", function_name, scope.get("client"), error)
            return Reply(401, {"detail": str(error)}, {"WWW-Authenticate": "Token"})
        except ApiError as error:
            logger.info("Rejected %s with 400: %s", function_name, error.errors)
            return Reply(400, {"errors": error.errors})
        return Reply(200, result)

    def call_function(self, function: Function, params: Params, token: Optional[str]) -> Any:
        """Authenticate the caller if the function needs a token, then run the function."""
        if function.needs_token:
            user_name = self.api.authenticate(token, _first(params, "user_name"))
        else:
            user_name = _first(params, "user_name") or ""
        return function.handler(self.api, params, user_name)

    async def respond_admin(self, scope: Dict[str, Any], receive: Callable) -> Reply:
        """Show (GET) or change (POST) the fault switches; needs the admin secret."""
        given_secret = header_value(scope, ADMIN_SECRET_HEADER.lower().encode("latin-1"))
        if not self.admin_secret or not hmac.compare_digest(
            given_secret.encode("utf-8"), self.admin_secret.encode("utf-8")
        ):
            return Reply(401, {"detail": f"Invalid or missing {ADMIN_SECRET_HEADER} header."})
        if scope["method"] == "POST":
            params = await read_params(scope, receive)
            try:
                apply_fault_action(self.faults, params)
            except ValueError as error:
                return Reply(400, {"errors": {"action": str(error)}})
            logger.info("Fault switches changed: %s", {name: values[-1] for name, values in params.items()})
        elif scope["method"] != "GET":
            return Reply(405, {"detail": "Use GET to show or POST to change faults."})
        return Reply(200, self.faults.state())


class ApiEndpoint:
    """The ASGI app behind the routes: an object, not a method, so that Starlette's Route passes calls on as they are.

    Starlette would wrap a method in a Request, a Response and an exception
    handler on every call, which took an estimated fifth of the sandbox's CPU
    time per call in a py-spy profile of 1,000 modify_job calls.
    """

    def __init__(self, application: SandboxApplication):
        self.application = application

    async def __call__(self, scope: Dict[str, Any], receive: Callable, send: Callable) -> None:
        try:
            reply = await self.application.respond(scope, receive)
        except ClientGone:
            logger.info("Client closed the connection before the body of %s %s arrived", scope["method"], scope["path"])
            return
        await send_json(send, reply)


def _first(params: Params, name: str) -> Optional[str]:
    values = params.get(name)
    return values[0] if values else None


FAULT_ACTIONS = (
    "fail_next", "delay_next", "drop_next", "hold_jobs", "release_jobs",
    "fill_destination", "fail_archive_next", "clear",
)


def apply_fault_action(faults: Faults, params: Params) -> None:
    """Apply ``action`` with its arguments (count, status, seconds, full) to the switches.

    :raises ValueError: for an unknown action or an invalid argument
    """
    action = _first(params, "action") or ""

    def number(name: str, default: str, kind: type) -> Any:
        text = _first(params, name) or default
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"Invalid {name} {text!r} for {action}: expected a number") from None

    if action == "fail_next":
        faults.fail_next(number("count", "1", int), number("status", "500", int))
    elif action == "delay_next":
        faults.delay_next(number("count", "1", int), number("seconds", "1", float))
    elif action == "drop_next":
        faults.drop_next(number("count", "1", int))
    elif action == "hold_jobs":
        faults.hold_jobs((_first(params, "status") or "").upper())
    elif action == "release_jobs":
        faults.release_jobs()
    elif action == "fill_destination":
        faults.fill_destination((_first(params, "full") or "true").lower() in ("true", "1", "yes"))
    elif action == "fail_archive_next":
        faults.fail_archive_next(number("count", "1", int), number("status", "404", int))
    elif action == "clear":
        faults.clear()
    else:
        raise ValueError(f"Unknown action {action!r}; expected one of {', '.join(FAULT_ACTIONS)}")


class FaultMiddleware:
    """ASGI middleware that delays, fails or drops calls as the fault switches are set."""

    def __init__(self, app: Callable, faults: Faults, admin_path: str):
        self.app = app
        self.faults = faults
        self.admin_path = admin_path

    async def __call__(self, scope: Dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") == self.admin_path:
            await self.app(scope, receive, send)
            return
        fault = self.faults.take_request_fault()
        if fault is None:
            await self.app(scope, receive, send)
            return

        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            logger.info("Fault: dropping the connection of %s %s", scope["method"], scope["path"])
            await drop_connection(send)
        elif fault.status is not None:
            logger.info("Fault: responding to %s %s with status %s", scope["method"], scope["path"], fault.status)
            response = PlainTextResponse(f"Sandbox fault: status {fault.status}", status_code=fault.status)
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def drop_connection(send: Callable) -> None:
    """Close the client's connection without sending a response.

    ASGI has no message for this, so the transport of uvicorn's response
    cycle is closed directly.
    """
    # NOTE: relies on uvicorn's RequestResponseCycle, whose bound ``send``
    # method has a ``transport`` attribute (h11 and httptools protocols of
    # uvicorn 0.2x to 0.55). Other servers get a response cut off after the
    # headers, which the client also sees as a broken connection.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        # Let the event loop run connection_lost, so uvicorn marks the
        # client as gone and does not try to send a 500 response.
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    })
    await send({"type": "http.response.body", "body": b"{", "more_body": False})


__all__: List[str] = ["SandboxApplication", "ADMIN_FUNCTION", "ADMIN_SECRET_HEADER"]
