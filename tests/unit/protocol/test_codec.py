"""Request/response round trips for every advertised API and version, with kio as the oracle."""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import reject
from hypothesis import settings
from hypothesis import strategies as st
from kio.serial import entity_reader
from kio.serial import entity_writer

from millpond.broker.apis import SUPPORTED_VERSIONS
from millpond.protocol.codec import ProtocolError
from millpond.protocol.codec import UnsupportedRequest
from millpond.protocol.codec import decode_request
from millpond.protocol.codec import encode_response
from millpond.protocol.codec import request_type
from millpond.protocol.codec import response_type

ALL_VERSIONS = [
    (key, version)
    for key, (low, high) in SUPPORTED_VERSIONS.items()
    for version in range(low, high + 1)
]


def encode_request(api_key: int, version: int, correlation_id: int, body: Any) -> bytes:
    buffer = io.BytesIO()
    client_id = b"test"
    buffer.write(struct.pack(">hhih", api_key, version, correlation_id, len(client_id)))
    buffer.write(client_id)
    if type(body).__flexible__:
        buffer.write(b"\0")
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


@pytest.mark.parametrize(("api_key", "version"), ALL_VERSIONS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_request_round_trip(api_key: int, version: int, data: st.DataObject) -> None:
    from hypothesis import strategies

    body = data.draw(strategies.from_type(request_type(api_key, version)))
    schema = request_type(api_key, version)
    buffer = io.BytesIO()
    entity_writer(schema)(buffer, body)
    try:
        entity_reader(schema)(buffer.getvalue(), 0)
    except (ValueError, OverflowError):
        # kio writes some extreme values it cannot read back (a timedelta near int64 max
        # milliseconds); such a request is refused as malformed, which is all we can do.
        reject()
    frame = encode_request(api_key, version, 7, body)
    header, decoded = decode_request(frame, SUPPORTED_VERSIONS)
    assert (header.api_key, header.api_version, header.correlation_id) == (api_key, version, 7)
    assert header.client_id == "test"
    assert decoded == body


@pytest.mark.parametrize(("api_key", "version"), ALL_VERSIONS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_response_round_trip(api_key: int, version: int, data: st.DataObject) -> None:
    from hypothesis import strategies

    schema = response_type(api_key, version)
    body = data.draw(strategies.from_type(schema))
    encoded = encode_response(99, body)
    (size,) = struct.unpack_from(">i", encoded, 0)
    assert size == len(encoded) - 4
    (correlation_id,) = struct.unpack_from(">i", encoded, 4)
    assert correlation_id == 99
    offset = 8
    if schema.__flexible__ and api_key != 18:
        assert encoded[offset] == 0
        offset += 1
    decoded, used = entity_reader(schema)(encoded, offset)
    assert offset + used == len(encoded)
    assert decoded == body


def test_unknown_api_is_unsupported() -> None:
    frame = struct.pack(">hhih", 9999, 0, 1, -1)
    with pytest.raises(UnsupportedRequest):
        decode_request(frame, SUPPORTED_VERSIONS)


def test_version_above_range_is_unsupported() -> None:
    frame = struct.pack(">hhih", 18, 99, 1, -1)
    with pytest.raises(UnsupportedRequest) as raised:
        decode_request(frame, SUPPORTED_VERSIONS)
    assert raised.value.header.correlation_id == 1


@given(junk=st.binary(max_size=200))
def test_junk_raises_only_protocol_errors(junk: bytes) -> None:
    for api_key, version in [(0, 9), (1, 12), (3, 12), (18, 3), (19, 7)]:
        frame = struct.pack(">hhih", api_key, version, 1, -1) + junk
        with contextlib.suppress(ProtocolError, UnsupportedRequest):
            decode_request(frame, SUPPORTED_VERSIONS)


def test_truncated_header_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_request(b"\x00\x01", SUPPORTED_VERSIONS)


def test_api_versions_response_uses_header_v0() -> None:
    from kio.schema.errors import ErrorCode

    from millpond.broker.apis import api_versions_response

    encoded = encode_response(5, api_versions_response(3, ErrorCode.none))
    # size, correlation id, then straight into the body's error code: no tagged-field byte.
    assert struct.unpack_from(">ih", encoded, 4) == (5, 0)


def test_every_schema_field_is_named() -> None:
    # A guard for build(): kio classes are dataclasses with resolved annotations.
    for api_key, version in ALL_VERSIONS:
        assert fields(response_type(api_key, version))
