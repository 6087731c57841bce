"""Read HTTP/1.1 responses from the bytes a connection delivers, as they arrive.

``ResponseParser`` takes the bytes of one response in pieces of any size and
reports when the response is complete. It follows the message framing of
RFC 9112 section 6. HEAD, 1xx, 204 and 304 responses have no body. Other
bodies are chunked, have a Content-Length, or end when the server closes the
connection. Interim 1xx responses are skipped. The limits on the status line
and header fields are those of http.client. Importing http.client (with the
email package it needs) took about 15 ms per command in
``python -X importtime`` on the benchmark machine.

Being fed bytes instead of reading a socket itself, the parser serves calls
that wait on their own socket as well as many calls that share one thread.
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List, Optional, Tuple

# As http.client: longer lines or more fields mean the peer is not an HTTP server.
MAX_LINE_LENGTH = 65536
MAX_HEADER_FIELDS = 100
# The whole header section, which http.client does not limit as such. IDIS
# servers send a few hundred bytes; a peer that sends more is not one of them.
MAX_HEADER_BYTES = 256 * 1024

# ASCII digits only: str.isdigit() and int() also take other scripts' digits and "1_000".
_DECIMAL = re.compile(r"[0-9]+")
_HEXADECIMAL = re.compile(r"[0-9A-Fa-f]+")

_NO_BODY_STATUSES = (204, 304)


class ProtocolError(Exception):
    """The bytes received are not a valid HTTP/1.x response."""


class IncompleteResponse(ProtocolError):
    """The connection ended before the response was complete."""


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection before sending any byte of a response.

    Named and worded as http.client names and words it, because users search
    for that text, and ``describe_connection_error`` recognises it.
    """


class ResponseHeaders:
    """Header fields of a response, looked up by name in any case.

    A field sent more than once has its values joined with ", ", as requests shows them.
    """

    def __init__(self, fields: List[Tuple[str, str]]):
        self._values: Dict[str, str] = {}
        self._names: Dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            if key in self._values:
                self._values[key] = f"{self._values[key]}, {value}"
            else:
                self._values[key] = value
                self._names[key] = name

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self._values.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> List[Tuple[str, str]]:
        return [(self._names[key], value) for key, value in self._values.items()]

    def __repr__(self) -> str:
        return f"ResponseHeaders({self.items()!r})"


class ResponseParser:
    """Collect one response to a ``method`` request. Call ``feed`` with what arrives, ``feed_eof`` at the end.

    After ``feed`` or ``feed_eof`` returns True, ``status``, ``reason``,
    ``headers``, ``body`` and ``will_close`` are set. ``headers_complete``
    is True once the status line and header fields have arrived. It decides
    whether a timeout counts as no response or as a broken one.
    """

    def __init__(self, method: str):
        self.method = method.upper()
        self.status = 0
        self.reason = ""
        self.version = ""
        self.headers = ResponseHeaders([])
        self.body = b""
        self.will_close = False
        self.headers_complete = False
        self.complete = False
        self.extra_bytes = False
        self.received_any = False
        self._buffer = bytearray()
        self._position = 0
        # Where the search for the end of the header section goes on, so that
        # header bytes that arrive in small pieces are not searched again and again.
        self._search_from = 0
        self._framing = ""  # "none", "length", "chunked" or "close"
        self._remaining = 0
        self._chunk_state = "size"  # "size", "data", "data_end" or "trailer"
        self._body_parts: List[bytes] = []

    def feed(self, data: bytes) -> bool:
        """Add received bytes; return True once the response is complete.

        :raises ProtocolError: if the bytes are not a valid response
        """
        if data:
            self.received_any = True
            if self.complete:
                # Bytes after a complete response: the connection cannot carry another call.
                self.extra_bytes = True
                return True
            self._buffer += data
        return self._advance()

    def feed_eof(self) -> bool:
        """Note that the server closed the connection; return True if that completes the response.

        :raises RemoteDisconnected: if no byte of a response arrived
        :raises IncompleteResponse: if the response was cut off
        """
        if self.complete:
            return True
        if not self.received_any:
            raise RemoteDisconnected("Remote end closed connection without response")
        if self.headers_complete and self._framing == "close":
            self._body_parts.append(bytes(self._buffer[self._position:]))
            self._finish()
            return True
        if not self.headers_complete:
            raise IncompleteResponse("the connection closed in the middle of the status line or header fields")
        if self._framing == "length":
            received = len(self._buffer) - self._position
            raise IncompleteResponse(
                f"IncompleteRead({received} bytes read, {self._remaining - received} more expected)"
            )
        raise IncompleteResponse("the connection closed in the middle of a chunked body")

    # Parsing

    def _advance(self) -> bool:
        while not self.headers_complete:
            if not self._parse_head():
                return False
        if self._framing == "length":
            available = len(self._buffer) - self._position
            if available < self._remaining:
                return False
            end = self._position + self._remaining
            self._body_parts.append(bytes(self._buffer[self._position:end]))
            self.extra_bytes = end < len(self._buffer)
            self._remaining = 0
            self._finish()
            return True
        if self._framing == "chunked":
            return self._advance_chunked()
        if self._framing == "none":
            self.extra_bytes = self._position < len(self._buffer)
            self._finish()
            return True
        return False  # "close": the body ends with the connection

    def _parse_head(self) -> bool:
        """Parse the status line and header fields if they are all there; skip 1xx responses."""
        buffer = self._buffer
        start = max(self._position, self._search_from)
        end = buffer.find(b"\r\n\r\n", start)
        separator_length = 4
        bare_end = buffer.find(b"\n\n", start)
        if bare_end != -1 and (end == -1 or bare_end < end):
            end, separator_length = bare_end, 2
        if end == -1:
            if len(buffer) - self._position > MAX_HEADER_BYTES:
                raise ProtocolError("the header section of the response is too long")
            if buffer.find(b"\n", self._position) == -1 and len(buffer) - self._position > MAX_LINE_LENGTH:
                raise ProtocolError("the status line of the response is too long")
            # The end may start in the last 3 bytes and be completed by the next piece.
            self._search_from = max(self._position, len(buffer) - 3)
            return False

        if end - self._position > MAX_HEADER_BYTES:
            raise ProtocolError("the header section of the response is too long")
        lines = bytes(buffer[self._position:end]).decode("iso-8859-1").split("\n")
        self._position = end + separator_length
        self._search_from = self._position
        status_line = lines[0].rstrip("\r")
        if len(status_line) > MAX_LINE_LENGTH:
            raise ProtocolError("the status line of the response is too long")
        # Split on runs of whitespace, as http.client does.
        parts = status_line.split(None, 2)
        version = parts[0] if parts else ""
        status_text = parts[1] if len(parts) > 1 else ""
        reason = parts[2] if len(parts) > 2 else ""
        if not version.startswith("HTTP/") or len(status_text) != 3 or not _DECIMAL.fullmatch(status_text):
            raise ProtocolError(f"BadStatusLine({status_line[:200]!r})")
        status = int(status_text)
        if status < 100:
            raise ProtocolError(f"BadStatusLine({status_line[:200]!r})")

        if len(lines) - 1 > MAX_HEADER_FIELDS:
            raise ProtocolError(f"got more than {MAX_HEADER_FIELDS} header fields")
        fields: List[Tuple[str, str]] = []
        for line in lines[1:]:
            line = line.rstrip("\r")
            if len(line) > MAX_LINE_LENGTH:
                raise ProtocolError("a header field of the response is too long")
            if line[:1] in (" ", "\t") and fields:
                # An obsolete folded line continues the field before it.
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                continue  # http.client skips lines that are not fields as well
            fields.append((name.strip(), value.strip()))

        if 100 <= status < 200 and status != 101:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self._compact()
            return True

        self.version = version
        self.status = status
        self.reason = reason.strip()
        self.headers = ResponseHeaders(fields)
        self.headers_complete = True
        self._choose_framing()
        self._compact()
        return True

    def _choose_framing(self) -> None:
        headers = self.headers
        connection_tokens = [token.strip().lower() for token in (headers.get("Connection") or "").split(",")]
        if self.version == "HTTP/1.1":
            self.will_close = "close" in connection_tokens
        else:
            self.will_close = "keep-alive" not in connection_tokens and "Keep-Alive" not in headers

        if self.method == "HEAD" or self.status in _NO_BODY_STATUSES or 100 <= self.status < 200:
            self._framing = "none"
            return
        transfer_codings = [
            coding.strip().lower() for coding in (headers.get("Transfer-Encoding") or "").split(",") if coding.strip()
        ]
        if transfer_codings and transfer_codings[-1] == "chunked":
            self._framing = "chunked"
            return
        # Other transfer codings (such as "identity") do not frame the body, as for http.client.
        length_text = headers.get("Content-Length")
        if length_text is not None:
            lengths = {part.strip() for part in length_text.split(",")}
            if len(lengths) != 1 or not _DECIMAL.fullmatch(next(iter(lengths))):
                raise ProtocolError(f"invalid Content-Length {length_text[:100]!r}")
            self._framing = "length"
            self._remaining = int(next(iter(lengths)))
            return
        self._framing = "close"
        self.will_close = True

    def _advance_chunked(self) -> bool:
        buffer = self._buffer
        while True:
            if self._chunk_state == "size":
                end = buffer.find(b"\n", self._position)
                if end == -1:
                    if len(buffer) - self._position > MAX_LINE_LENGTH:
                        raise ProtocolError("a chunk size line is too long")
                    return False
                size_text = bytes(buffer[self._position:end]).split(b";", 1)[0].strip().decode("iso-8859-1")
                self._position = end + 1
                if not _HEXADECIMAL.fullmatch(size_text):
                    raise ProtocolError(f"invalid chunk size {size_text[:50]!r}")
                size = int(size_text, 16)
                if size == 0:
                    self._chunk_state = "trailer"
                else:
                    self._remaining = size
                    self._chunk_state = "data"
            elif self._chunk_state == "data":
                available = len(buffer) - self._position
                if available == 0:
                    return False
                take = min(available, self._remaining)
                self._body_parts.append(bytes(buffer[self._position:self._position + take]))
                self._position += take
                self._remaining -= take
                if self._remaining:
                    self._compact()
                    return False
                self._chunk_state = "data_end"
            elif self._chunk_state == "data_end":
                end = buffer.find(b"\n", self._position)
                if end == -1:
                    if len(buffer) - self._position > 2:
                        raise ProtocolError("a chunk is longer than its declared size")
                    return False
                if bytes(buffer[self._position:end]).strip():
                    raise ProtocolError("a chunk is longer than its declared size")
                self._position = end + 1
                self._chunk_state = "size"
            else:  # trailer fields, up to an empty line
                end = buffer.find(b"\n", self._position)
                if end == -1:
                    if len(buffer) - self._position > MAX_LINE_LENGTH:
                        raise ProtocolError("a trailer field is too long")
                    return False
                line = bytes(buffer[self._position:end]).strip()
                self._position = end + 1
                if not line:
                    self.extra_bytes = self._position < len(buffer)
                    self._finish()
                    return True
            self._compact()

    def _compact(self) -> None:
        """Drop the bytes already parsed, so that long bodies are not copied again and again."""
        if self._position > 65536:
            del self._buffer[:self._position]
            self._search_from = max(0, self._search_from - self._position)
            self._position = 0

    def _finish(self) -> None:
        self.body = self._body_parts[0] if len(self._body_parts) == 1 else b"".join(self._body_parts)
        self._body_parts = []
        self._buffer = bytearray()
        self._position = 0
        self._search_from = 0
        self.complete = True
