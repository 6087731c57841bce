"""Send API calls over kept-alive connections with the standard library alone, for the common case.

From 8 threads, requests spends 0.8 ms to 1.1 ms of CPU time on each call,
about four times as much as http.client (1,000 POST calls over HTTPS to the
sandbox, measured with benchmarks/sandbox_calls.py). In bulk operations that
CPU time, not the server, set the pace, and importing requests adds about
0.1 s to every command. Responses are read with ``anonapi.http1``, which
costs less per call than http.client and is cheaper to import.

``DirectTransport.request`` sends one call and waits for its response;
``request_many`` sends many from one thread over several connections, which
costs about half the CPU time per call of doing the same from threads.

``DirectTransport`` sends what ``WebAPIClient``'s requests session sends: the
same form-encoded body, Authorization and Content-Type headers, timeouts,
certificate checks and CA bundle. Only the User-Agent differs, and
Accept-Encoding offers gzip and deflate alone. Failures are
raised as the requests exception that requests would raise for them, with the
low-level error as its cause, so that ``WebAPIClient`` translates both paths
the same way. It is used only where it behaves like requests (see
``DirectTransport.create`` and ``accepts``): proxies and redirects are left
to requests.

NOTE: unlike requests, it neither stores cookies nor sends them back. IDIS
servers authenticate every call with the token, so no API function needs them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
import zlib
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union
from urllib.parse import quote_plus, urlsplit

from anonapi import __version__
from anonapi.http1 import ProtocolError, RemoteDisconnected, ResponseHeaders, ResponseParser

logger = logging.getLogger(__name__)

USER_AGENT = f"anonapi/{__version__}"

# Characters that requests sends unchanged in a path. A URL with any other
# character is sent with requests, which quotes it.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")

# Characters that quote_plus leaves as they are.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-~]*")

# Bytes asked of a connection at a time: more than a job info response, so that one read usually takes it all.
RECEIVE_SIZE = 65536


class DirectTransportError(Exception):
    """A failed call, carrying the requests exception that requests would have raised for it.

    ``after_sending`` is True when the call had been sent (the failure came
    with its response), False when no connection could be made for it.
    """

    def __init__(
        self, requests_error_name: str, cause: BaseException, message: Optional[str] = None,
        after_sending: bool = False,
    ):
        super().__init__(message or str(cause))
        self.requests_error_name = requests_error_name
        self.cause = cause
        self.after_sending = after_sending

    def as_requests_error(self) -> Exception:
        """Return the requests exception, with the low-level error as its ``__cause__``."""
        import requests

        error = getattr(requests.exceptions, self.requests_error_name)(self.args[0])
        error.__cause__ = self.cause
        return error


class DirectResponse:
    """The parts of a requests.Response that WebAPIClient reads."""

    def __init__(self, method: str, status: int, reason: str, headers: ResponseHeaders, content: bytes):
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.request = _SentRequest(method)

    @property
    def text(self) -> str:
        """The body decoded as requests decodes it: the charset of the Content-Type, else UTF-8."""
        return self.content.decode(self._encoding(), errors="replace")

    def json(self) -> Any:
        """Parse the body as JSON. Raises ValueError if it is not JSON."""
        return json.loads(self.text)

    def _encoding(self) -> str:
        content_type = self.headers.get("Content-Type") or ""
        media_type, _, parameters = content_type.partition(";")
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip("\"'")
                try:
                    "".encode(charset)
                    return charset
                except LookupError:
                    break
        if media_type.strip().lower().startswith("text/"):
            return "ISO-8859-1"
        return "utf-8"


class _SentRequest:
    def __init__(self, method: str):
        self.method = method


def encode_form(data: Dict[str, Any]) -> bytes:
    """Form-encode ``data`` as requests does: lists as repeated fields, None values left out."""
    fields: List[str] = []
    for name, values in data.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        for value in values:
            if value is not None:
                fields.append(f"{_quote_form_value(name)}={_quote_form_value(value)}")
    return "&".join(fields).encode("ascii")


def _quote_form_value(value: Any) -> str:
    """Quote one name or value as urlencode does, skipping quote_plus for the usual plain values."""
    if not isinstance(value, (str, bytes)):
        value = str(value)
    if isinstance(value, str) and _UNRESERVED.fullmatch(value):
        return value
    return quote_plus(value)


def configured_proxies() -> Dict[str, str]:
    """Return the proxies that requests would find in the environment or the system settings.

    A no_proxy list alone (key ``no``) configures no proxy, so it is left out.
    """
    if sys.platform not in ("win32", "darwin") and not any(name.lower().endswith("_proxy") for name in os.environ):
        # Elsewhere getproxies reads only these variables, and usually none is set.
        # Importing urllib.request would cost every command about 10 ms.
        return {}
    from urllib.request import getproxies

    return {scheme: proxy for scheme, proxy in getproxies().items() if scheme != "no"}


def ca_bundle_for_requests() -> Optional[str]:
    """Return the CA bundle that requests verifies with: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or certifi's."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return bundle
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


def make_tls_context(validate_https: bool) -> Optional[ssl.SSLContext]:
    """Return a TLS context set up as urllib3 2 sets up requests' context, or None if that is not possible.

    None when verification is on and the CA bundle is missing: requests then
    raises its own error, so the call goes through requests.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3 | ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    if sys.version_info >= (3, 13):
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    if getattr(context, "post_handshake_auth", None) is not None:
        context.post_handshake_auth = True
    try:
        context.hostname_checks_common_name = False
    except (AttributeError, NotImplementedError):
        pass  # builds without the setting never check the common name anyway
    key_log_file = os.environ.get("SSLKEYLOGFILE")
    if key_log_file:
        context.keylog_filename = os.path.expandvars(key_log_file)
    if not validate_https:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    bundle = ca_bundle_for_requests()
    if bundle is None or not os.path.exists(bundle):
        return None
    try:
        if os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
        else:
            context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError):
        return None
    return context


class DirectTransport:
    """Kept-alive connections to one server, shared by the threads of one WebAPIClient.

    :param max_idle_connections: connections kept open between calls. More
        threads than this still each get a connection, closed after the call.
    """

    def __init__(
        self,
        base_url: str,
        host: str,
        port: int,
        base_path: str,
        header_block: bytes,
        tls_context: Optional[ssl.SSLContext],
        max_idle_connections: int,
    ):
        self.base_url = base_url.rstrip("/")
        self.host = host
        self.port = port
        self.base_path = base_path.rstrip("/")
        self.header_block = header_block
        self.tls_context = tls_context
        self.max_idle_connections = max_idle_connections
        self._idle: List[socket.socket] = []
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls, base_url: str, token: str, validate_https: bool, max_idle_connections: int
    ) -> Optional["DirectTransport"]:
        """Return a transport for ``base_url``, or None where only requests behaves as expected.

        None for URLs that are not plain http or https with an ASCII host name,
        because requests raises the errors for those. None for URLs with a user
        name, a query or unusual characters, when a proxy is configured, and
        when the CA bundle is missing.
        """
        try:
            parts = urlsplit(base_url)
            port = parts.port
        except ValueError:
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname or not parts.hostname.isascii():
            return None
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            return None
        if not _PLAIN_PATH.fullmatch(parts.path) or configured_proxies():
            return None
        tls_context = None
        if parts.scheme == "https":
            tls_context = make_tls_context(validate_https)
            if tls_context is None:
                return None

        # The Host header as http.client writes it: no port if it is the default one.
        default_port = 443 if parts.scheme == "https" else 80
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        host_header = host if port in (None, default_port) else f"{host}:{port}"
        headers = {
            "Host": host_header,
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Connection": "keep-alive",
            "Authorization": f"Token {token}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        # The caller checks that the token is Latin-1 without control characters.
        header_block = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        return cls(
            base_url, parts.hostname, port or default_port, parts.path, header_block, tls_context,
            max_idle_connections,
        )

    def accepts(self, url: str) -> bool:
        """Return whether ``url`` is below this transport's base URL and needs no quoting."""
        if not url.startswith(self.base_url + "/"):
            return False
        return _PLAIN_PATH.fullmatch(url[len(self.base_url):]) is not None

    def request(
        self, method: str, url: str, data: Dict[str, Any], timeout: Tuple[float, float]
    ) -> Optional[DirectResponse]:
        """Send one call and return the response, or None for a redirect, which requests has to follow.

        ``url`` must be one that ``accepts`` returns True for.

        :raises DirectTransportError: if connecting, sending or receiving fails
        """
        connect_timeout, read_timeout = timeout
        message = self._message(method, url, data)
        sock = self._take_connection(connect_timeout)
        parser = ResponseParser(method)
        try:
            self._send_message(sock, message, connect_timeout)
            sock.settimeout(read_timeout)
            while True:
                received = sock.recv(RECEIVE_SIZE)
                if not received:
                    parser.feed_eof()
                    break
                if parser.feed(received):
                    break
        except DirectTransportError:
            sock.close()
            raise
        except BaseException as error:
            sock.close()
            failure = _receive_failure(parser, error)
            if failure is None:
                raise
            raise failure from error
        self._release(sock, parser)
        return _response(method, parser)

    def request_many(
        self,
        method: str,
        calls: Iterable[Tuple[Any, str, Dict[str, Any]]],
        timeout: Tuple[float, float],
        max_in_flight: int,
        idempotent: bool = False,
    ) -> Iterator[Tuple[Any, Union[DirectResponse, DirectTransportError, None]]]:
        """Send many calls from this one thread, at most ``max_in_flight`` at a time, each on its own connection.

        ``calls`` gives ``(key, url, data)``; each ``url`` must be one that
        ``accepts`` returns True for. Yields ``(key, outcome)`` as responses
        arrive: the response, None for a redirect (which requests has to
        follow), or the DirectTransportError of a call that failed. A failed
        call does not stop the others. Closing the generator closes the
        connections of the calls still in flight; the calls not yet sent are
        not sent.

        Pass ``idempotent`` for calls that do no harm when sent twice (as
        cancel_job). Such a call is sent once more on a new connection when a
        kept-alive connection turns out to be closed by the server before any
        byte of the response came back.

        From 8 threads, the same calls cost this process about twice the CPU
        time (0.23 ms against 0.13 ms per call in benchmarks/sandbox_calls.py),
        spent in handing over the GIL and in the futures that carry the results.
        """
        import selectors

        connect_timeout, read_timeout = timeout
        limit = max(1, max_in_flight)
        selector = selectors.DefaultSelector()
        in_flight: Dict[socket.socket, _CallInFlight] = {}
        pending = iter(calls)
        # Calls to send again, on a new connection, after a kept-alive one was found closed.
        resend: List[_CallInFlight] = []
        waiting: Optional[Tuple[Any, str, Dict[str, Any]]] = None
        exhausted = False
        try:
            while True:
                opened = False
                while len(in_flight) < limit:
                    if not resend and waiting is None:
                        waiting = next(pending, None)
                        if waiting is None:
                            exhausted = True
                            break
                    sock = None if resend else self._take_idle()
                    reused = sock is not None
                    if sock is None:
                        if opened and in_flight:
                            # One TLS handshake per round: the responses to the calls
                            # already sent are read in between, not after all handshakes.
                            break
                        opened = True
                        try:
                            sock = self._connect(connect_timeout)
                        except DirectTransportError as error:
                            if resend:
                                key = resend.pop().key
                            else:
                                key, waiting = waiting[0], None  # type: ignore[index]
                            yield key, error
                            continue
                    if resend:
                        call = resend.pop()
                        call.parser = ResponseParser(method)
                    else:
                        key, url, data = waiting  # type: ignore[misc]
                        waiting = None
                        call = _CallInFlight(key, self._message(method, url, data), ResponseParser(method), 0.0)
                    call.reused = reused
                    try:
                        self._send_message(sock, call.message, connect_timeout)
                        sock.setblocking(False)
                    except DirectTransportError as error:
                        sock.close()
                        if idempotent and self._may_resend(call, error.cause):
                            resend.append(call)
                            continue
                        yield call.key, error
                        continue
                    call.deadline = time.monotonic() + read_timeout
                    in_flight[sock] = call
                    selector.register(sock, selectors.EVENT_READ)
                if not in_flight:
                    if resend:
                        continue
                    return

                if (resend or not exhausted) and len(in_flight) < limit:
                    wait = 0.0  # only look for responses, then open the next connection
                else:
                    wait = min(call.deadline for call in in_flight.values()) - time.monotonic()
                ready: List[socket.socket] = [key.fileobj for key, _ in selector.select(max(0.0, wait))]  # type: ignore[misc]
                now = time.monotonic()
                # Past their deadline: the caller may have kept this thread busy (or the
                # process was stopped) while the response arrived, so they are read first.
                late = [sock for sock, call in in_flight.items() if call.deadline <= now and sock not in ready]
                for sock in ready + late:
                    call = in_flight[sock]
                    outcome = self._receive_available(sock, call, read_timeout)
                    if outcome is None:
                        if sock in ready or call.deadline > time.monotonic():
                            continue  # more to come, or bytes arrived so the wait starts again
                        outcome = _receive_failure(call.parser, socket.timeout("The read operation timed out"))
                    selector.unregister(sock)
                    del in_flight[sock]
                    if isinstance(outcome, DirectTransportError):
                        sock.close()
                        if idempotent and self._may_resend(call, outcome.cause):
                            resend.append(call)
                            continue
                        yield call.key, outcome
                        continue
                    self._release(sock, outcome)
                    try:
                        yield call.key, _response(method, outcome)
                    except DirectTransportError as error:
                        yield call.key, error
        finally:
            for sock in in_flight:
                sock.close()
            selector.close()

    @staticmethod
    def _may_resend(call: "_CallInFlight", cause: BaseException) -> bool:
        """Return whether a failed call found a closed kept-alive connection, and was not sent again yet.

        Servers close idle connections when they like, and the close can cross
        the next call on the way. Then not a byte of the response came back.
        The server may still have carried out the first call before closing,
        so this is only for calls that do no harm when carried out twice.
        """
        if not call.reused or call.resent or call.parser.received_any:
            return False
        if not isinstance(cause, (RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            return False
        call.resent = True
        logger.debug("Kept-alive connection closed by the server; sending the call again")
        return True

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def _message(self, method: str, url: str, data: Dict[str, Any]) -> bytes:
        path = self.base_path + url[len(self.base_url):]
        body = encode_form(data)
        # One write for the request line, headers and body: in two writes, as
        # http.client sends them, each would cost a TLS record and a wake-up of the server.
        return b"".join((
            f"{method} {path} HTTP/1.1\r\n".encode("ascii"),
            self.header_block,
            f"Content-Length: {len(body)}\r\n\r\n".encode("ascii"),
            body,
        ))

    @staticmethod
    def _send_message(sock: socket.socket, message: bytes, connect_timeout: float) -> None:
        """Send a request, with urllib3's timeout and errors: it sends under the connect timeout."""
        try:
            sock.settimeout(connect_timeout)
            sock.sendall(message)
        except socket.timeout as error:
            raise DirectTransportError("ReadTimeout", error, after_sending=True) from error
        except ssl.SSLError as error:
            raise DirectTransportError("SSLError", error, after_sending=True) from error
        except OSError as error:
            raise DirectTransportError(
                "ConnectionError", error, f"('Connection aborted.', {error!r})", after_sending=True
            ) from error

    @staticmethod
    def _receive_available(
        sock: socket.socket, call: "_CallInFlight", read_timeout: float
    ) -> Union[ResponseParser, DirectTransportError, None]:
        """Read what a non-blocking connection has; return the parser once complete, an error, or None for more."""
        parser = call.parser
        try:
            while True:
                try:
                    received = sock.recv(RECEIVE_SIZE)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    return None
                if not received:
                    parser.feed_eof()
                    return parser
                # As urllib3's read timeout: the longest wait for the next bytes, not for the whole response.
                call.deadline = time.monotonic() + read_timeout
                if parser.feed(received):
                    return parser
        except (OSError, ProtocolError) as error:
            failure = _receive_failure(parser, error)
            assert failure is not None
            return failure

    # Connections

    def _release(self, sock: socket.socket, parser: ResponseParser) -> None:
        """Keep a connection for the next call, unless the response marks it as closing or unusable."""
        if parser.will_close or parser.extra_bytes:
            sock.close()
        else:
            self._give_back(sock)

    def _take_connection(self, connect_timeout: float) -> socket.socket:
        sock = self._take_idle()
        return sock if sock is not None else self._connect(connect_timeout)

    def _take_idle(self) -> Optional[socket.socket]:
        """Return a kept-alive connection that is still open, or None."""
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return None
            if _is_dropped(sock):
                # The server closed the kept-alive connection while it was idle.
                sock.close()
                continue
            return sock

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle_connections:
                self._idle.append(sock)
                return
        sock.close()

    def _connect(self, connect_timeout: float) -> socket.socket:
        """Open a connection, raising what requests raises: ConnectTimeout, SSLError or ConnectionError."""
        logger.debug("Opening a connection to %s port %s", self.host, self.port)
        try:
            raw_socket = socket.create_connection((self.host, self.port), timeout=connect_timeout)
        except socket.timeout as error:
            raise DirectTransportError("ConnectTimeout", error) from error
        except OSError as error:
            raise DirectTransportError("ConnectionError", error) from error
        raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls_context is None:
            return raw_socket

        try:
            return self.tls_context.wrap_socket(raw_socket, server_hostname=self.host)
        except ssl.SSLError as error:
            raw_socket.close()
            raise DirectTransportError("SSLError", error) from error
        except socket.timeout as error:
            # urllib3 reports a TLS handshake that times out as a read timeout.
            raw_socket.close()
            raise DirectTransportError("ReadTimeout", error) from error
        except OSError as error:
            raw_socket.close()
            raise DirectTransportError("ConnectionError", error) from error


class _CallInFlight:
    """A call of ``request_many``: the request, and its response so far, expected until ``deadline``."""

    __slots__ = ("key", "message", "parser", "deadline", "reused", "resent")

    def __init__(self, key: Any, message: bytes, parser: ResponseParser, deadline: float):
        self.key = key
        self.message = message
        self.parser = parser
        self.deadline = deadline
        self.reused = False
        self.resent = False


def _receive_failure(parser: ResponseParser, error: BaseException) -> Optional[DirectTransportError]:
    """Return the error that requests raises when receiving a response fails, or None for other errors.

    Before the status line and header fields are complete, a timeout is a
    ReadTimeout and any other failure an aborted connection. After that, the
    body was cut off.
    """
    if isinstance(error, socket.timeout):
        # Also after the header fields: requests reports that as a ConnectionError,
        # which anonapi would word as a failure to connect.
        return DirectTransportError("ReadTimeout", error, after_sending=True)
    if isinstance(error, ssl.SSLError):
        return DirectTransportError("SSLError", error, after_sending=True)
    if not isinstance(error, (OSError, ProtocolError)):
        return None
    if parser.headers_complete:
        return DirectTransportError(
            "ChunkedEncodingError", error, f"('Connection broken: {error!r}', {error!r})", after_sending=True
        )
    return DirectTransportError("ConnectionError", error, f"('Connection aborted.', {error!r})", after_sending=True)


def _response(method: str, parser: ResponseParser) -> Optional[DirectResponse]:
    """Return the response of a complete parser, or None for a redirect, which requests has to follow."""
    if 300 <= parser.status < 400 and parser.headers.get("Location"):
        return None
    content = _decode_content(parser.body, parser.headers.get("Content-Encoding"))
    return DirectResponse(method, parser.status, parser.reason, parser.headers, content)


def _decode_content(content: bytes, content_encoding: Optional[str]) -> bytes:
    """Return the body with gzip or deflate content encoding undone, as requests does."""
    encoding = (content_encoding or "").strip().lower()
    if not content or encoding not in ("gzip", "x-gzip", "deflate"):
        return content
    try:
        if encoding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:
                # Some servers send raw deflate data without the zlib header.
                return zlib.decompress(content, -zlib.MAX_WBITS)
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    except zlib.error as error:
        raise DirectTransportError(
            "ContentDecodingError", error,
            f"Received response with content-encoding: {encoding}, but failed to decode it.",
            after_sending=True,
        ) from error


def _is_dropped(sock: Optional[socket.socket]) -> bool:
    """Return whether an idle kept-alive connection was closed: it is readable, so EOF or junk waits."""
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True
