"""The Starlette application that serves the sandbox API under a base path."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

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


async def read_params(request: Request) -> Params:
    """Return the query string and form-encoded body fields, for GET as well as POST.

    The body is parsed here instead of with ``request.form()``, which limits
    the number of fields to 1000 and get_jobs_list may get 10,000 job ids.
    """
    params: Params = {}
    # Parsed here only when present, because request.query_params costs as much as the body.
    if request.scope.get("query_string"):
        for name, value in request.query_params.multi_items():
            params.setdefault(name, []).append(value)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_fields=100_000)
        for name, value in form.multi_items():
            params.setdefault(name, []).append(str(value))
        return params
    body = await request.body()
    if body:
        text = body.decode("utf-8", errors="replace")
        for name, value in parse_qsl(text, keep_blank_values=True):
            params.setdefault(name, []).append(value)
    return params


def count_job_ids(params: Params) -> int:
    """Return how many job ids a call carries, in repeated or comma-separated fields."""
    return sum(value.count(",") + 1 for value in params.get("job_ids", ()))


def not_found_with_documentation(function_name: str) -> JSONResponse:
    if function_name:
        sentence = f"Function '{function_name}' does not exist on this API. See 'documentation'."
    else:
        sentence = "No function given. Add a function name to the URL, see 'documentation'."
    return JSONResponse({"documentation": documentation_text(), "404": sentence}, status_code=404)


def token_from_header(request: Request) -> Optional[str]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
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
        routes = [Route(f"{base}/{{function:path}}", self.handle, methods=ALL_METHODS)]
        if base:
            routes.insert(0, Route(base, self.handle, methods=ALL_METHODS))
        app = Starlette(routes=routes)
        return FaultMiddleware(app, self.faults, f"{base}/{ADMIN_FUNCTION}")

    async def handle(self, request: Request) -> Response:
        function_name = request.path_params.get("function", "").strip("/")
        if function_name == ADMIN_FUNCTION:
            return await self.handle_admin(request)
        function = FUNCTIONS.get(function_name)
        if function is None:
            return not_found_with_documentation(function_name)
        if request.method != function.method:
            return JSONResponse(
                {"detail": f'Method "{request.method}" not allowed; {function_name} needs {function.method}.'},
                status_code=405,
                headers={"Allow": function.method},
            )

        params = await read_params(request)
        token = token_from_header(request)
        try:
            # A hop to a worker thread and back costs more than the SQLite
            # calls of most functions, so only slow calls take it.
            if function.slow or count_job_ids(params) > MAX_INLINE_JOB_IDS:
                result = await run_in_threadpool(self.call_function, function, params, token)
            else:
                result = self.call_function(function, params, token)
        except AuthenticationError as error:
            logger.warning("Rejected %s from %s with 401: %s", function_name, request.client, error)
            return JSONResponse({"detail": str(error)}, status_code=401, headers={"WWW-Authenticate": "Token"})
        except ApiError as error:
            logger.info("Rejected %s with 400: %s", function_name, error.errors)
            return JSONResponse({"errors": error.errors}, status_code=400)
        return JSONResponse(result)

    def call_function(self, function: Function, params: Params, token: Optional[str]) -> Any:
        """Authenticate the caller if the function needs a token, then run the function."""
        if function.needs_token:
            user_name = self.api.authenticate(token, _first(params, "user_name"))
        else:
            user_name = _first(params, "user_name") or ""
        return function.handler(self.api, params, user_name)

    async def handle_admin(self, request: Request) -> Response:
        """Show (GET) or change (POST) the fault switches; needs the admin secret."""
        given_secret = request.headers.get(ADMIN_SECRET_HEADER, "")
        if not self.admin_secret or not hmac.compare_digest(
            given_secret.encode("utf-8"), self.admin_secret.encode("utf-8")
        ):
            return JSONResponse({"detail": f"Invalid or missing {ADMIN_SECRET_HEADER} header."}, status_code=401)
        if request.method == "POST":
            params = await read_params(request)
            try:
                apply_fault_action(self.faults, params)
            except ValueError as error:
                return JSONResponse({"errors": {"action": str(error)}}, status_code=400)
            logger.info("Fault switches changed: %s", {name: values[-1] for name, values in params.items()})
        elif request.method != "GET":
            return JSONResponse({"detail": "Use GET to show or POST to change faults."}, status_code=405)
        return JSONResponse(self.faults.state())


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
