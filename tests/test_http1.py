"""Tests of the HTTP/1.1 response parser that the transport reads every response with."""

from __future__ import annotations

import gzip
import http.client
import io

import pytest

from anonapi.http1 import IncompleteResponse, ProtocolError, RemoteDisconnected, ResponseParser

JSON_BODY = b'{"job_id":5,"status":"DONE"}'
JSON_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"date: Fri, 04 Dec 2026 22:01:55 GMT\r\n"
    b"server: uvicorn\r\n"
    b"content-length: %d\r\n"
    b"content-type: application/json\r\n"
    b"\r\n" % len(JSON_BODY)
) + JSON_BODY


def parse(raw: bytes, method: str = "POST", piece: int = 0, eof: bool = False) -> ResponseParser:
    """Feed ``raw`` whole, or in pieces of ``piece`` bytes, and the end of the connection if ``eof``."""
    parser = ResponseParser(method)
    pieces = [raw[start:start + piece] for start in range(0, len(raw), piece)] if piece else [raw]
    complete = False
    for data in pieces:
        complete = parser.feed(data)
    if eof:
        complete = parser.feed_eof()
    assert complete
    return parser


def parse_with_http_client(raw: bytes, method: str = "POST") -> http.client.HTTPResponse:
    class Source:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    response = http.client.HTTPResponse(Source(), method=method)  # type: ignore[arg-type]
    response.begin()
    return response


@pytest.mark.parametrize("piece", [0, 1, 7])
def test_content_length_response_in_any_pieces(piece):
    parser = parse(JSON_RESPONSE, piece=piece)
    assert (parser.status, parser.reason) == (200, "OK")
    assert parser.headers.get("Content-Type") == "application/json"
    assert parser.body == JSON_BODY
    assert not parser.will_close
    assert not parser.extra_bytes


def test_same_as_http_client():
    raw = (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"X-Long: first\r\n  folded\r\nContent-Length: 2\r\n\r\n{}"
    )
    parser = parse(raw)
    response = parse_with_http_client(raw)
    assert (parser.status, parser.reason) == (response.status, response.reason)
    assert parser.body == response.read()
    assert parser.headers.get("content-type") == response.getheader("Content-Type")
    assert parser.headers["X-Long"] == "first folded"


def test_not_complete_until_whole_body():
    parser = ResponseParser("POST")
    assert not parser.feed(JSON_RESPONSE[:-1])
    assert parser.headers_complete
    assert parser.feed(JSON_RESPONSE[-1:])


@pytest.mark.parametrize("piece", [0, 1, 5])
def test_chunked_body_with_extension_and_trailer(piece):
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=value\r\n{\"a\"\r\n"
        b"3\r\n:1}\r\n"
        b"0\r\nExpires: never\r\n\r\n"
    )
    parser = parse(raw, piece=piece)
    assert parser.body == b'{"a":1}'
    assert not parser.will_close


def test_chunked_body_in_upper_case_hex():
    body = b"x" * 26
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A\r\n" + body + b"\r\n0\r\n\r\n"
    assert parse(raw).body == body


def test_body_until_close():
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"up\": true}"
    parser = ResponseParser("GET")
    assert not parser.feed(raw)
    assert parser.feed_eof()
    assert parser.body == b'{"up": true}'
    assert parser.will_close


def test_interim_response_skipped():
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + JSON_RESPONSE
    parser = parse(raw)
    assert parser.status == 200
    assert "Link" not in parser.headers


@pytest.mark.parametrize(
    "raw, method",
    [
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "POST"),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", "GET"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", "HEAD"),
    ],
)
def test_responses_without_body(raw, method):
    parser = parse(raw, method=method)
    assert parser.body == b""
    assert not parser.will_close


@pytest.mark.parametrize(
    "head, will_close",
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n", True),
        (b"HTTP/1.0 200 OK\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", False),
        (b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\n", False),
        (b"HTTP/1.1 200 OK\r\n", False),
    ],
)
def test_connection_reuse_as_http_client_decides(head, will_close):
    raw = head + b"Content-Length: 2\r\n\r\n{}"
    assert parse(raw).will_close is will_close
    assert parse_with_http_client(raw).will_close is will_close


def test_bare_line_feeds_accepted():
    parser = parse(b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}")
    assert (parser.status, parser.body) == (200, b"{}")


def test_repeated_fields_joined_and_names_in_any_case():
    parser = parse(b"HTTP/1.1 200 OK\r\nVary: Accept\r\nvary: Cookie\r\nContent-Length: 0\r\n\r\n")
    assert parser.headers.get("VARY") == "Accept, Cookie"
    assert parser.headers.get("missing", "default") == "default"
    assert list(parser.headers) == ["Vary", "Content-Length"]


def test_bytes_after_response_mark_connection_unusable():
    assert parse(JSON_RESPONSE + b"HTTP/1.1 200").extra_bytes
    parser = ResponseParser("POST")
    parser.feed(JSON_RESPONSE)
    parser.feed(b"junk")
    assert parser.extra_bytes


def test_gzip_body_left_encoded():
    body = gzip.compress(b'{"a": 1}')
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert parse(raw).body == body


def test_closed_before_any_byte():
    parser = ResponseParser("POST")
    with pytest.raises(RemoteDisconnected, match="Remote end closed connection without response"):
        parser.feed_eof()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Le", "status line or header fields"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", r"IncompleteRead\(2 bytes read, 8 more expected\)"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", "chunked body"),
    ],
)
def test_cut_off_response(raw, message):
    parser = ResponseParser("POST")
    assert not parser.feed(raw)
    with pytest.raises(IncompleteResponse, match=message):
        parser.feed_eof()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"<html>hello</html>\r\n\r\n", "BadStatusLine"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "BadStatusLine"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", "BadStatusLine"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", "invalid chunk size"),
        ("HTTP/1.1 2\u00b20 OK\r\nContent-Length: 2\r\n\r\n{}".encode("latin-1"), "BadStatusLine"),
        ("HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\n{}".encode("latin-1"), "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n", "longer than its declared size"),
    ],
)
def test_invalid_responses(raw, message):
    with pytest.raises(ProtocolError, match=message):
        ResponseParser("POST").feed(raw)


def test_identity_transfer_coding_uses_content_length():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}"
    assert parse(raw).body == parse_with_http_client(raw).read() == b"{}"


def test_status_line_with_extra_spaces():
    raw = b"HTTP/1.1  200  OK\r\nContent-Length: 2\r\n\r\n{}"
    parser = parse(raw)
    assert (parser.status, parser.reason) == (200, "OK")
    assert parse_with_http_client(raw).status == 200


def test_endless_header_section_stops_early():
    parser = ResponseParser("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="header section of the response is too long"):
        for number in range(100_000):
            parser.feed(b"X-Field: %d\r\n" % number)
    assert number < 30_000


def test_header_end_split_over_pieces():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    for split in range(len(raw)):
        parser = ResponseParser("GET")
        parser.feed(raw[:split])
        assert parser.feed(raw[split:])
        assert parser.body == b"{}"


def test_too_many_header_fields():
    fields = b"".join(b"X-Field-%d: 1\r\n" % number for number in range(101))
    with pytest.raises(ProtocolError, match="more than 100 header fields"):
        ResponseParser("GET").feed(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n")


def test_endless_status_line():
    parser = ResponseParser("GET")
    with pytest.raises(ProtocolError, match="status line"):
        for _ in range(5):
            parser.feed(b"x" * 20000)


def test_same_length_repeated_is_accepted():
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}").body == b"{}"


def test_large_body_in_small_pieces():
    body = bytes(range(256)) * 1000
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert parse(raw, piece=4096).body == body
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n" % len(body[start:start + 3000]) + body[start:start + 3000] + b"\r\n"
        for start in range(0, len(body), 3000)
    ) + b"0\r\n\r\n"
    assert parse(chunked, piece=4096).body == body
