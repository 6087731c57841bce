"""Talk to IDIS anonymization servers over their web API.

``WebAPIClient`` sends single API calls to one server and translates every
failure into an exception from ``anonapi.exceptions``. ``AnonClientTool``
works at the level of servers and jobs and returns ``JobInfo`` objects.

requests is imported only when the first call is made, so that importing
this module stays cheap for commands that never talk to a server.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

from anonapi.bulk import BulkResult, collect, in_threads
from anonapi.exceptions import (
    APIError,
    AnonAPIError,
    ConfigurationError,
    CredentialsRejectedError,
    NoResponseError,
    NotAnAPIError,
    ServerNotReachableError,
    UnexpectedResponseError,
    UnknownFunctionError,
    WrongMethodError,
)
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobInfo, JobsInfoList, JobStatus, parse_job_info_map

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 60.0)
DEFAULT_MAX_RETRIES = 3

# Status codes after which a GET is sent again: the server or a proxy in front
# of it is briefly overloaded or restarting.
RETRY_STATUS_CODES = (502, 503, 504)

# A server that sends a longer Retry-After than this is not tried again: the
# error is raised at once instead of after minutes of waiting.
MAX_RETRY_AFTER_SECONDS = 30.0

# get_jobs_list takes this many ids per request, to keep request bodies small.
JOB_IDS_PER_REQUEST = 100

# Marks WebAPIClient._direct_transport before the first call decides it.
_UNDECIDED = object()

# modify_job arguments that reset a job.
RESET_ARGUMENTS: Dict[str, Any] = {
    "status": JobStatus.ACTIVE,
    "files_downloaded": 0,
    "files_processed": 0,
    # The server does not take an empty string here.
    "error": " ",
}

# Connections kept open per server, for the threads of bulk operations that
# share one client. anonapi.settings limits max_concurrent_requests to this.
CONNECTION_POOL_SIZE = 32


def mask_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        # urlsplit and .port reject malformed URLs such as 'http://[::1/p' or
        # port 99999, which still have to appear in the error message.
        return _USER_INFO_PATTERN.sub("//***@", url)
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


# The user name and password part of a URL: from '//' up to the last '@' before the path.
_USER_INFO_PATTERN = re.compile(r"//[^/?#]*@")


def check_token(token: str) -> None:
    """Check that ``token`` can be sent in an HTTP header, without showing it.

    :raises ConfigurationError: naming the position of the first invalid character
    """
    # A regular expression, because this runs before every call and a loop over the characters costs 20 us.
    match = _UNSENDABLE_CHARACTER.search(token)
    if match is not None:
        raise ConfigurationError(
            f"The token contains a character that cannot be sent in an HTTP header "
            f"(character {match.start() + 1} of {len(token)}, code {ord(match.group())}). "
            "Set the token again with 'anon settings user set-token'."
        )


# Control characters, DEL and characters beyond Latin-1.
_UNSENDABLE_CHARACTER = re.compile(r"[^\x20-\x7e\x80-\xff]")


class _TokenAuth:
    """Sets ``Authorization: Token <token>`` on each request.

    Given as the session's ``auth``, it takes precedence over a user name and
    password in the URL and over ~/.netrc, which requests would otherwise send
    as basic authentication in place of the token.
    """

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Token {self.token}"
        return request

    def __repr__(self) -> str:
        return "_TokenAuth(token=***)"


class WebAPIClient:
    """Sends API calls to one IDIS server and returns the JSON it sends back.

    Every request carries ``Authorization: Token <token>`` and the form field
    ``user_name``. Arguments are form-encoded in the body for GET and POST,
    and list values are sent as repeated fields. Calls go out through
    ``anonapi.transport.DirectTransport`` where it behaves like requests, and
    through a requests session otherwise (proxies, redirects).

    :param hostname: base URL of the API, for example ``https://host/p01``
    :param timeout: (connect, read) timeouts in seconds
    :param max_retries: how often a GET is sent again after a connection
        error or a 502, 503 or 504 response. POST requests are never sent
        again, because the first one may have created a job already.
    """

    # Seconds to wait before the first retry. Each later retry waits twice as long.
    backoff_factor = 0.5

    def __init__(
        self,
        hostname: str,
        username: str,
        token: str,
        validate_https: bool = True,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ):
        self.hostname = hostname
        self.username = username
        self.token = token
        self.validate_https = validate_https
        self.timeout = tuple(timeout)
        if len(self.timeout) != 2 or not all(
            isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0 for seconds in self.timeout
        ):
            raise ValueError(f"timeout must be (connect, read) in seconds, both finite and above 0, got {timeout!r}")
        self.max_retries = max_retries
        self._session = None
        self._session_lock = threading.Lock()
        self._direct_transport: Any = _UNDECIDED

    def __str__(self) -> str:
        return f"WebAPIClient for {self.username}@{mask_url(self.hostname)}"

    def __repr__(self) -> str:
        return f"WebAPIClient(hostname={mask_url(self.hostname)!r}, username={self.username!r})"

    def get(self, function_name: str, **kwargs: Any) -> Dict[str, Any]:
        """Call an API function with GET and return the JSON response.

        :raises ServerError: a subclass for each kind of failure
        """
        return self._call("GET", function_name, kwargs)

    def post(self, function_name: str, **kwargs: Any) -> Dict[str, Any]:
        """Call an API function with POST and return the JSON response. Never retried.

        :raises ServerError: a subclass for each kind of failure
        """
        return self._call("POST", function_name, kwargs)

    def post_many(
        self,
        function_name: str,
        calls: Iterable[Tuple[Any, Dict[str, Any]]],
        max_in_flight: int,
        idempotent: bool = False,
    ) -> Iterator[Tuple[Any, Union[Dict[str, Any], AnonAPIError]]]:
        """Call one API function with POST once per ``(key, arguments)`` in ``calls``.

        At most ``max_in_flight`` calls wait for a response at a time. Yields
        ``(key, response)`` in the order the responses arrive, where the
        response is the JSON of the call, or the AnonAPIError it failed with:
        one failed call does not stop the others. Closing the generator stops
        sending the calls not yet sent.

        Calls are not retried, with one exception for ``idempotent`` functions,
        which do no harm when sent twice (as cancel_job). A call of theirs that
        meets a kept-alive connection the server has just closed, before any
        byte of a response, is sent again on a new connection.
        """
        url = self.url_for(function_name)
        # Calls are identified by their position, so that a key given twice still gets a response per call.
        calls = list(calls)
        direct = self._get_direct_transport()
        if direct is None or not direct.accepts(url):
            def post_one(index: Any) -> Dict[str, Any]:
                return self.post(function_name, **calls[index][1])

            for index, outcome in in_threads(post_one, range(len(calls)), max_in_flight):
                yield calls[index][0], outcome
            return

        from anonapi.transport import DirectTransportError

        check_token(self.token)
        sent: Dict[int, Dict[str, Any]] = {}

        def requests_to_send() -> Iterator[Tuple[int, str, Dict[str, Any]]]:
            for index, (_, arguments) in enumerate(calls):
                data = dict(arguments)
                data.setdefault("user_name", self.username)
                sent[index] = data
                yield index, url, data

        outcomes = direct.request_many("POST", requests_to_send(), self.timeout, max_in_flight, idempotent)
        for index, outcome in outcomes:
            data = sent.pop(index)
            key = calls[index][0]
            try:
                if isinstance(outcome, DirectTransportError):
                    self._send_with_requests("POST", url, data, outcome.as_requests_error())
                    raise AssertionError("unreachable: _send_with_requests raises the failure it is given")
                if outcome is None:
                    # A redirect, which requests follows. NOTE: as in _send, the POST is sent again.
                    outcome = self._send_with_requests("POST", url, data)
                yield key, self._parse_response(outcome, function_name, url)
            except _RetryableConnectionError as error:
                yield key, _as_no_response(error.cause, outcome)
            except AnonAPIError as error:
                yield key, _as_no_response(error, outcome)

    def get_documentation(self) -> str:
        """Return the API's own description, which also shows that the server is up and an IDIS API.

        :raises NotAnAPIError: if the base URL does not respond like an IDIS API
        """
        try:
            response = self.get("")
        except UnknownFunctionError as error:
            documentation = error.documentation
        else:
            if "documentation" not in response:
                raise NotAnAPIError(
                    f"{mask_url(self.hostname)} is not an IDIS web API: its base URL sent no documentation. "
                    "Check the server URL.",
                    url=self.hostname,
                )
            documentation = response["documentation"]
        return documentation if isinstance(documentation, str) else json.dumps(documentation, indent=2)

    def url_for(self, function_name: str) -> str:
        """Return the URL of an API function: the base URL, a slash, and the name."""
        return f"{self.hostname.rstrip('/')}/{function_name}"

    def close(self) -> None:
        """Close the connections this client keeps open."""
        if self._session is not None:
            self._session.close()
            self._session = None
        direct = self._direct_transport
        if direct is not _UNDECIDED and direct is not None:
            direct.close()

    def _get_session(self):
        with self._session_lock:
            if self._session is None:
                import requests
                from requests.adapters import HTTPAdapter

                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=CONNECTION_POOL_SIZE, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.auth = _TokenAuth(self.token)
                session.verify = self.validate_https
                if not self.validate_https:
                    # The user chose this with 'anon settings set-validate-ssl false' and was
                    # warned then. urllib3 would print a multi-line warning for every host.
                    import urllib3

                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                    logger.info("TLS certificate verification is off for %s", mask_url(self.hostname))
                self._session = session
            return self._session

    def _call(self, method: str, function_name: str, arguments: Dict[str, Any]) -> Dict[str, Any]:
        url = self.url_for(function_name)
        data = dict(arguments)
        data.setdefault("user_name", self.username)
        attempts = 1 + (self.max_retries if method == "GET" else 0)

        for attempt in range(1, attempts + 1):
            is_last_attempt = attempt == attempts
            started = time.monotonic()
            try:
                response = self._send(method, url, data)
            except _RetryableConnectionError as error:
                if is_last_attempt:
                    raise error.cause from error.cause.__cause__
                self._wait_before_retry(attempt, method, url, str(error.cause), self._retry_delay(attempt))
                continue

            logger.debug(
                "%s %s -> %s in %.2f s", method, mask_url(url), response.status_code, time.monotonic() - started
            )
            if response.status_code in RETRY_STATUS_CODES and not is_last_attempt:
                delay = self._retry_delay(attempt, response.headers.get("Retry-After"))
                if delay is not None:
                    self._wait_before_retry(attempt, method, url, f"status {response.status_code}", delay)
                    continue
                logger.info(
                    "%s %s: status %s with Retry-After %s, longer than %g s, so not retried",
                    method, mask_url(url), response.status_code, response.headers.get("Retry-After"),
                    MAX_RETRY_AFTER_SECONDS,
                )
            return self._parse_response(response, function_name, url)

        raise AssertionError("unreachable: the last attempt returns or raises")

    def _get_direct_transport(self):
        """Return the DirectTransport for this client's server, or None where requests has to send."""
        with self._session_lock:
            if self._direct_transport is _UNDECIDED:
                from anonapi.transport import DirectTransport

                self._direct_transport = DirectTransport.create(
                    self.hostname, self.token, self.validate_https, CONNECTION_POOL_SIZE
                )
                if self._direct_transport is not None and not self.validate_https:
                    logger.info("TLS certificate verification is off for %s", mask_url(self.hostname))
            return self._direct_transport

    def _send(self, method: str, url: str, data: Dict[str, Any]):
        check_token(self.token)
        failure = None
        direct = self._get_direct_transport()
        if direct is not None and direct.accepts(url):
            from anonapi.transport import DirectTransportError

            try:
                response = direct.request(method, url, data, self.timeout)
            except DirectTransportError as error:
                failure = error.as_requests_error()
            else:
                # None for a redirect, which requests follows after sending the request again.
                # NOTE: so a POST reaches a redirecting URL twice. That assumes the
                # server did not act on a request that it answered with a redirect.
                if response is not None:
                    return response
        return self._send_with_requests(method, url, data, failure)

    def _send_with_requests(self, method: str, url: str, data: Dict[str, Any], failure: Optional[Exception] = None):
        """Send a call through the requests session, or raise ``failure``, a requests error, translated.

        :raises _RetryableConnectionError: for failures that a GET may retry
        :raises ServerError: for the others
        """
        import requests

        session = self._get_session()
        try:
            if failure is not None:
                # Raised here, so that the handlers below translate it like an error of requests.
                raise failure
            # verify is given per request as well: requests ignores session.verify=False
            # when REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set (requests 2.34.2, reported as psf/requests issue 3829).
            return session.request(method, url, data=data, timeout=self.timeout, verify=self.validate_https)
        except requests.exceptions.SSLError as error:
            raise ServerNotReachableError(
                f"TLS connection to {mask_url(url)} failed: {_innermost_message(error)}. If the server uses a "
                "certificate your system does not trust, install that certificate or switch verification off.",
                url=url,
            ) from error
        except requests.exceptions.ConnectTimeout as error:
            unreachable = ServerNotReachableError(
                f"Could not reach {mask_url(url)}: connecting timed out after {self.timeout[0]:g} s. "
                "Check the URL and that the server is up.",
                url=url,
            )
            raise _RetryableConnectionError(_chained(unreachable, error)) from error
        except requests.exceptions.ReadTimeout as error:
            # Not retried: the server may still be working on the request.
            raise NoResponseError(
                f"No response from {mask_url(url)}: reading timed out after {self.timeout[1]:g} s. "
                "The server is up but slow. Try again later or raise the read timeout.",
                url=url,
            ) from error
        except requests.exceptions.ConnectionError as error:
            # "Connection aborted" is urllib3's word for a connection lost after the request went out.
            sent = "connection aborted" in _full_message(error).lower()
            unreachable = (NoResponseError if sent else ServerNotReachableError)(
                f"Could not reach {mask_url(url)}: {describe_connection_error(error)}.", url=url
            )
            raise _RetryableConnectionError(_chained(unreachable, error)) from error
        except requests.exceptions.InvalidHeader as error:
            # requests puts the header value, so the token, in this message: it is not shown.
            raise ConfigurationError(
                f"Request to {mask_url(url)} failed: the user name or token contains characters that cannot be "
                "sent in an HTTP header. Set them again with 'anon settings user set-username NAME' and "
                "'anon settings user set-token'."
            ) from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            ValueError,
        ) as error:
            # requests' message repeats the URL, with any password in it, so it is not shown.
            if isinstance(error, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
                problem = "it does not start with http:// or https://"
            else:
                problem = "its host or port cannot be read"
            raise ConfigurationError(
                f"Invalid server URL '{mask_url(self.hostname)}': {problem}. Use a URL such as https://host/path."
            ) from error
        except requests.exceptions.RequestException as error:
            # For example a response cut off halfway (ChunkedEncodingError).
            raise NoResponseError(
                f"Request to {mask_url(url)} failed: {_innermost_message(error)}. Try again, and "
                "if this persists, inform the server's administrator.",
                url=url,
            ) from error

    def _retry_delay(self, attempt: int, retry_after: Optional[str] = None) -> Optional[float]:
        """Return the seconds to wait before retry ``attempt``, or None if the server asks for too long.

        A Retry-After in seconds lengthens the backoff. Other forms (an HTTP date) are ignored.
        """
        delay = self.backoff_factor * (2 ** (attempt - 1))
        if retry_after is None:
            return delay
        try:
            requested = float(retry_after)
        except ValueError:
            return delay
        if math.isnan(requested):
            return delay
        if requested > MAX_RETRY_AFTER_SECONDS:
            return None
        return max(delay, requested)

    def _wait_before_retry(self, attempt: int, method: str, url: str, reason: str, delay: float) -> None:
        logger.info(
            "%s %s failed (%s), retry %d of %d in %.1f s",
            method, mask_url(url), reason, attempt, self.max_retries, delay,
        )
        time.sleep(delay)

    def _parse_response(self, response, function_name: str, url: str) -> Dict[str, Any]:
        status = response.status_code
        shown_url = mask_url(url)
        if status == 200:
            return self._parse_json(response, url)
        if status == 400:
            errors = self._parse_json(response, url).get("errors") or {}
            if not isinstance(errors, dict):
                errors = {"error": errors}
            details = "; ".join(f"{key}: {value}" for key, value in errors.items()) or "no reason given"
            raise APIError(
                f"The server rejected {function_name or 'the request'} at {shown_url}: {details}",
                url=url,
                errors=errors,
            )
        if status == 401:
            raise CredentialsRejectedError(
                f"The server at {mask_url(self.hostname)} rejected the credentials of user '{self.username}' "
                "(status 401). Check the user name and the token.",
                url=url,
            )
        if status == 404:
            raise self._error_for_404(response, function_name, url)
        if status == 405:
            raise WrongMethodError(
                f"The server does not accept {response.request.method} for {shown_url} (status 405). "
                "The function needs the other HTTP method.",
                url=url,
            )
        raise UnexpectedResponseError(
            f"Unexpected response from {shown_url}: status {status} '{response.reason}'. "
            "If this persists, inform the server's administrator.",
            url=url,
            status_code=status,
            reason=response.reason,
        )

    def _error_for_404(self, response, function_name: str, url: str) -> AnonAPIError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "documentation" in body:
            return UnknownFunctionError(
                f"The server at {mask_url(self.hostname)} has no API function '{function_name}'.",
                url=url,
                documentation=body["documentation"],
            )
        return NotAnAPIError(
            f"{mask_url(url)} was not found (status 404), so {mask_url(self.hostname)} is not an IDIS web API. "
            "Check the server URL.",
            url=url,
        )

    def _parse_json(self, response, url: str) -> Dict[str, Any]:
        try:
            body = response.json()
        except ValueError as error:
            content_type = response.headers.get("Content-Type", "unknown")
            raise NotAnAPIError(
                f"{mask_url(url)} sent a response that is not JSON (status {response.status_code}, "
                f"content type {content_type}), so it is not an IDIS web API. Check the server URL.",
                url=url,
            ) from error
        if not isinstance(body, dict):
            raise NotAnAPIError(
                f"{mask_url(url)} sent JSON that is not an object (status {response.status_code}), "
                "so it is not an IDIS web API. Check the server URL.",
                url=url,
            )
        return body


class _RetryableConnectionError(Exception):
    """Internal carrier: a connection failure that a GET may retry. ``cause`` is the error to raise."""

    def __init__(self, cause: ServerNotReachableError):
        super().__init__(str(cause))
        self.cause = cause


def _as_no_response(error: AnonAPIError, outcome: Any) -> AnonAPIError:
    """Return ``error`` as a NoResponseError if the direct transport sent the call before it failed.

    Telling these apart lets a bulk change go on after one call that got no
    response, where a server that cannot be reached at all stops it.
    """
    if type(error) is not ServerNotReachableError or not getattr(outcome, "after_sending", False):
        return error
    no_response = NoResponseError(str(error), url=error.url)
    no_response.__cause__ = error.__cause__
    return no_response


def _chained(error: AnonAPIError, cause: BaseException) -> AnonAPIError:
    """Return ``error`` with ``cause`` as its ``__cause__``, as ``raise error from cause`` would set it."""
    error.__cause__ = cause
    return error


def describe_connection_error(error: BaseException) -> str:
    """Return why a connection failed, in the words users search for: refused, name not known, ..."""
    text = _full_message(error)
    lowered = text.lower()
    if any(marker in lowered for marker in (
        "name or service not known", "nodename nor servname", "getaddrinfo failed",
        "temporary failure in name resolution", "nameresolutionerror", "failed to resolve", "no address associated",
    )):
        return "host name not known. Check the server URL for typing errors"
    if any(marker in lowered for marker in ("connection refused", "errno 111", "winerror 10061", "econnrefused")):
        return "connection refused. The host is up but nothing accepts connections on that port. Check the URL or inform the server's administrator"
    if any(marker in lowered for marker in ("timed out", "timeout")):
        return "connecting timed out. Check the URL and that the server is up"
    if any(marker in lowered for marker in (
        "remotedisconnected", "connection aborted", "connection reset", "connection closed", "broken pipe",
    )):
        return "the server closed the connection without a response. Try again, and if this persists, inform the server's administrator"
    return f"{_innermost_message(error)}. Check the URL and that the server is up"


def _full_message(error: BaseException) -> str:
    parts = []
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        for argument in getattr(current, "args", ()):
            if isinstance(argument, BaseException):
                parts.append(f"{type(argument).__name__}: {argument}")
        current = current.__cause__ or current.__context__ or getattr(current, "reason", None)
        if not isinstance(current, BaseException):
            current = None
    return " | ".join(parts)


def _innermost_message(error: BaseException) -> str:
    current: BaseException = error
    while True:
        following = current.__cause__ or current.__context__
        if following is None:
            return str(current)
        current = following


class ServerStatus:
    """Whether a server is up and an IDIS API, with ``message`` giving the reason if not."""

    def __init__(self, server: RemoteAnonServer, is_online: bool, message: str):
        self.server = server
        self.is_online = is_online
        self.message = message

    def __str__(self) -> str:
        return f"{self.server}: {'OK' if self.is_online else 'not OK'}: {self.message}"

    def __repr__(self) -> str:
        return f"ServerStatus(server={self.server!r}, is_online={self.is_online!r}, message={self.message!r})"


class AnonClientTool:
    """Works with jobs on any number of servers, with one user name and token.

    Returns JobInfo objects and raises exceptions from ``anonapi.exceptions``.
    It never prints.

    :param max_concurrent_requests: requests in flight at once when a call
        needs several, such as job info for thousands of ids
    """

    def __init__(
        self,
        username: str,
        token: str,
        validate_https: bool = True,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        max_concurrent_requests: int = 8,
    ):
        self.username = username
        self.token = token
        self.validate_https = validate_https
        self.timeout = tuple(timeout)
        self.max_concurrent_requests = max_concurrent_requests
        self._clients: Dict[str, WebAPIClient] = {}
        self._clients_lock = threading.Lock()

    def __str__(self) -> str:
        return f"AnonClientTool for user {self.username}"

    def close(self) -> None:
        """Close the connections kept open to every server. The tool can still be used afterwards."""
        with self._clients_lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()

    def __enter__(self) -> "AnonClientTool":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def get_client(self, url: str) -> WebAPIClient:
        """Return the client for ``url``, the same one on every call, so connections are reused."""
        with self._clients_lock:
            client = self._clients.get(url)
            if client is None:
                client = WebAPIClient(
                    hostname=url,
                    username=self.username,
                    token=self.token,
                    validate_https=self.validate_https,
                    timeout=self.timeout,
                )
                self._clients[url] = client
            return client

    def get_server_status(self, server: RemoteAnonServer) -> ServerStatus:
        """Check whether the server is up and an IDIS API. Failures are reported in the status, not raised."""
        try:
            self.get_client(server.url).get_documentation()
        except AnonAPIError as error:
            return ServerStatus(server, is_online=False, message=str(error))
        return ServerStatus(server, is_online=True, message="the server is up and is an IDIS web API")

    def get_job_info(self, server: RemoteAnonServer, job_id: Any) -> JobInfo:
        """Return the extended info of one job.

        :raises APIError: if the job does not exist
        """
        response = self.get_client(server.url).get("get_job", job_id=job_id)
        return _job_info_from_response(response, server, "get_job", job_id)

    def get_job_info_list(
        self, server: RemoteAnonServer, job_ids: Iterable[Any], get_extended_info: bool = False
    ) -> JobsInfoList:
        """Return short or extended info for the given jobs, in the order of ``job_ids``.

        Ids that do not exist on the server are left out. Large lists are sent
        in several requests, some of them at the same time.
        """
        if isinstance(job_ids, (str, int)):
            job_ids = [job_ids]
        ids = [str(job_id) for job_id in job_ids]
        if not ids:
            return JobsInfoList([])
        function_name = "get_jobs_list_extended" if get_extended_info else "get_jobs_list"
        client = self.get_client(server.url)
        chunks = [ids[start:start + JOB_IDS_PER_REQUEST] for start in range(0, len(ids), JOB_IDS_PER_REQUEST)]

        def fetch(chunk: List[str]) -> JobsInfoList:
            return _jobs_from_response(client.get(function_name, job_ids=chunk), server, function_name)

        if len(chunks) == 1:
            results = [fetch(chunks[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor

            executor = ThreadPoolExecutor(max_workers=max(1, min(self.max_concurrent_requests, len(chunks))))
            try:
                results = list(executor.map(fetch, chunks))
            finally:
                # After an error or Ctrl+C, the chunks not yet started are not sent.
                executor.shutdown(wait=True, cancel_futures=True)

        by_id = {str(info.job_id): info for result in results for info in result}
        return JobsInfoList([by_id[job_id] for job_id in ids if job_id in by_id])

    def get_jobs(self, server: RemoteAnonServer) -> JobsInfoList:
        """Return the server's latest jobs, newest first."""
        jobs = _jobs_from_response(self.get_client(server.url).get("get_jobs"), server, "get_jobs")
        return JobsInfoList(sorted(jobs, key=lambda info: info.job_id or 0, reverse=True))

    def cancel_job(self, server: RemoteAnonServer, job_id: Any) -> JobInfo:
        """Cancel a job: its status becomes INACTIVE."""
        response = self.get_client(server.url).post("cancel_job", job_id=job_id)
        return _job_info_from_response(response, server, "cancel_job", job_id)

    def reset_job(self, server: RemoteAnonServer, job_id: Any) -> JobInfo:
        """Make a job ACTIVE again with its file counts and error cleared, so the server processes it again."""
        response = self.get_client(server.url).post("modify_job", job_id=job_id, **RESET_ARGUMENTS)
        return _job_info_from_response(response, server, "modify_job", job_id)

    def cancel_jobs(
        self,
        server: RemoteAnonServer,
        job_ids: Iterable[Any],
        max_concurrent_requests: Optional[int] = None,
        on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
    ) -> BulkResult:
        """Cancel many jobs as ``cancel_job`` does; see ``reset_jobs`` for how."""
        return self._change_jobs(server, job_ids, "cancel_job", {}, max_concurrent_requests, on_done)

    def reset_jobs(
        self,
        server: RemoteAnonServer,
        job_ids: Iterable[Any],
        max_concurrent_requests: Optional[int] = None,
        on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]] = None,
    ) -> BulkResult:
        """Reset many jobs as ``reset_job`` does, with at most ``max_concurrent_requests`` calls at a time.

        Returns an ``anonapi.bulk.BulkResult``: the JobInfo of each changed job
        and the error of each failed one, which does not stop the others.
        ``on_done(job_id, error_or_None)`` is called after each job, in this
        thread. Rejected credentials and an unreachable server stop the run
        and are raised, because every other job would fail the same way.
        """
        return self._change_jobs(server, job_ids, "modify_job", RESET_ARGUMENTS, max_concurrent_requests, on_done)

    def _change_jobs(
        self,
        server: RemoteAnonServer,
        job_ids: Iterable[Any],
        function_name: str,
        arguments: Dict[str, Any],
        max_concurrent_requests: Optional[int],
        on_done: Optional[Callable[[str, Optional[AnonAPIError]], None]],
    ) -> BulkResult:
        client = self.get_client(server.url)
        ids = [str(job_id) for job_id in job_ids]
        max_in_flight = min(max_concurrent_requests or self.max_concurrent_requests, CONNECTION_POOL_SIZE)
        responses = client.post_many(
            function_name,
            ((job_id, dict(arguments, job_id=job_id)) for job_id in ids),
            max_in_flight,
            # A second cancel or reset of a job leaves it as the first one did.
            idempotent=True,
        )

        def job_infos() -> Iterator[Tuple[str, Union[JobInfo, AnonAPIError]]]:
            try:
                for job_id, response in responses:
                    if isinstance(response, AnonAPIError):
                        yield job_id, response
                        continue
                    try:
                        yield job_id, _job_info_from_response(response, server, function_name, job_id)
                    except AnonAPIError as error:
                        yield job_id, error
            finally:
                responses.close()

        return collect(job_infos(), on_done, max_in_flight)

    def set_opt_out_ignore(self, server: RemoteAnonServer, job_id: Any, reason: str) -> JobInfo:
        """Let a job go ahead although the patient opted out, recording why (for example the consent obtained)."""
        response = self.get_client(server.url).post(
            "modify_job",
            job_id=job_id,
            source_ignore_opt_out=True,
            source_ignore_opt_out_reason=f"Reason: {reason}",
        )
        return _job_info_from_response(response, server, "modify_job", job_id)

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
        """Create a job that reads files from a network share (UNC path) and return its extended info."""
        return self._create_job(
            server,
            source_type="PATH",
            source_path=source_path,
            destination_type="PATH",
            destination_path=destination_path,
            project_name=project_name,
            anonymizedpatientname=anon_name,
            anonymizedpatientid=anon_id,
            pims_keyfile_id=pims_keyfile_id,
            description=description,
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
        """Create a job that fetches one study from PACS and return its extended info.

        :param source_instance_id: a StudyInstanceUID, or ``accession_number:<number>``
        :param sop_class_filter_list: SOPClassUIDs. Only objects of these classes are taken.
        """
        filter_list = None
        if sop_class_filter_list:
            filter_list = ",".join(str(uid).strip() for uid in sop_class_filter_list)
        return self._create_job(
            server,
            source_type="WADO",
            source_name=source_name,
            source_instance_id=source_instance_id,
            source_sop_class_filter_list=filter_list,
            destination_type="PATH",
            destination_path=destination_path,
            project_name=project_name,
            anonymizedpatientname=anon_name,
            anonymizedpatientid=anon_id,
            pims_keyfile_id=pims_keyfile_id,
            description=description,
        )

    def _create_job(self, server: RemoteAnonServer, **arguments: Any) -> JobInfo:
        # Arguments left as None are not sent, so the server applies its own defaults.
        response = self.get_client(server.url).post("create_job", **_without_none(**arguments))
        return _job_info_from_response(response, server, "create_job")

    def get_token(self, server: RemoteAnonServer, password: str) -> str:
        """Ask the server for a new token for this user.

        :raises UnknownFunctionError: if the server has no get_token function
        :raises NotAnAPIError: if the response has no token
        """
        client = self.get_client(server.url)
        response = client.post("get_token", password=password)
        token = response.get("token")
        if not isinstance(token, str) or not token:
            raise NotAnAPIError(
                f"The get_token response of {mask_url(server.url)} contains no token. "
                "Inform the server's administrator.",
                url=client.url_for("get_token"),
            )
        return token


def _job_info_from_response(
    response: Dict[str, Any], server: RemoteAnonServer, function_name: str, job_id: Any = None
) -> JobInfo:
    fields = dict(response)
    if fields.get("job_id") is None and job_id is not None:
        fields["job_id"] = job_id
    try:
        info = JobInfo.from_json(fields)
    except (TypeError, ValueError) as error:
        raise _unreadable_job_info(server, function_name, error) from error
    if job_id is not None and _same_job_id(info.job_id, job_id) is False:
        # A response meant for another call, for example from a proxy that mixes up connections.
        raise UnexpectedResponseError(
            f"The server's response to {function_name} of job {job_id} at {mask_url(server.url)} is about job "
            f"{info.job_id}. If this persists, inform the server's administrator.",
            url=server.url,
            status_code=200,
        )
    return info


def _same_job_id(first: Any, second: Any) -> Optional[bool]:
    """Return whether two job ids name the same job, or None if either is not a number."""
    try:
        return int(str(first).strip()) == int(str(second).strip())
    except ValueError:
        return None


def _jobs_from_response(response: Dict[str, Any], server: RemoteAnonServer, function_name: str) -> JobsInfoList:
    try:
        return parse_job_info_map(response)
    except (TypeError, ValueError) as error:
        raise _unreadable_job_info(server, function_name, error) from error


def _unreadable_job_info(server: RemoteAnonServer, function_name: str, error: Exception) -> NotAnAPIError:
    url = f"{server.url.rstrip('/')}/{function_name}"
    return NotAnAPIError(
        f"The {function_name} response of {mask_url(server.url)} is not job info as an IDIS web API sends it "
        f"({type(error).__name__}: {error}). Check the server URL, or inform the server's administrator.",
        url=url,
    )


def _without_none(**arguments: Any) -> Dict[str, Any]:
    return {key: value for key, value in arguments.items() if value is not None}
