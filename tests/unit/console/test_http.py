"""The HTTP listener's pure parts: request heads in, response bytes out. No sockets here."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millpond.console.http import BadRequest
from millpond.console.http import Response
from millpond.console.http import encode_response
from millpond.console.http import parse_request_head


def test_a_get_with_headers_and_a_query() -> None:
    head = parse_request_head(
        b"GET /metrics?name[]=x HTTP/1.1\r\nHost: broker:9644\r\nAccept:  text/plain \r\n\r\n"
    )
    assert head.method == "GET"
    assert head.target == "/metrics?name[]=x"
    assert head.path == "/metrics"
    assert head.version == (1, 1)
    assert head.headers == (("host", "broker:9644"), ("accept", "text/plain"))


def test_http_1_0_needs_no_host_and_leading_blank_lines_are_skipped() -> None:
    head = parse_request_head(b"\r\nGET /health HTTP/1.0\r\n\r\n")
    assert (head.method, head.path, head.version) == ("GET", "/health", (1, 0))


def test_an_absolute_form_target_routes_by_its_path() -> None:
    head = parse_request_head(b"GET http://broker:9644/health HTTP/1.1\r\nHost: broker\r\n\r\n")
    assert head.path == "/health"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"hello\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health http/1.1\r\nHost: x\r\n\r\n",
        b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\rinjected\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\nX-Bare: lf\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello
    ],
)
def test_malformed_heads_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request_head(raw)
    assert caught.value.status == HTTPStatus.BAD_REQUEST


def test_other_http_versions_are_not_supported() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request_head(b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n")
    assert caught.value.status == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_bad_request(raw: bytes) -> None:
    try:
        head = parse_request_head(raw)
    except BadRequest:
        return
    assert head.method
    assert head.target


def test_responses_are_framed_and_close_the_connection() -> None:
    raw = encode_response(Response(HTTPStatus.OK, b'{"status": "ready"}', "application/json"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b'{"status": "ready"}'
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: application/json",
        b"Content-Length: 19",
        b"Cache-Control: no-store",
        b"Connection: close",
    ]


def test_a_405_names_the_allowed_method() -> None:
    raw = encode_response(Response(HTTPStatus.METHOD_NOT_ALLOWED, b"", allow="GET"))
    assert raw.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nAllow: GET\r\n" in raw
