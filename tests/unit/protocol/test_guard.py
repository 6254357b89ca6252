"""The structural pre-check refuses impossible lengths before kio's native decoder sees them."""

from __future__ import annotations

import struct

import pytest

from millpond.broker.apis import SUPPORTED_VERSIONS
from millpond.protocol.codec import ProtocolError
from millpond.protocol.codec import decode_request

HUGE_ARRAY = bytes.fromhex("0003000900000001000000ffffffff0f000000")


def test_a_huge_compact_array_count_is_refused_not_fatal() -> None:
    with pytest.raises(ProtocolError, match="cannot fit"):
        decode_request(HUGE_ARRAY, SUPPORTED_VERSIONS)


def test_a_huge_legacy_array_count_is_refused() -> None:
    # Metadata v1: topics int32 count 2^31 - 1 with nothing after it.
    frame = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 2**31 - 1)
    with pytest.raises(ProtocolError, match="cannot fit"):
        decode_request(frame, SUPPORTED_VERSIONS)


def test_null_where_the_schema_forbids_it_is_refused() -> None:
    # DeleteTopics v4: topic_names is a non-nullable compact array; 0 means null.
    frame = struct.pack(">hhih", 20, 4, 1, -1) + b"\x00" + b"\x00" + b"\x00\x00\x27\x10" + b"\x00"
    with pytest.raises(ProtocolError, match="null"):
        decode_request(frame, SUPPORTED_VERSIONS)


def test_a_string_longer_than_the_request_is_refused() -> None:
    # FindCoordinator v0: key string of length 1000 with 3 bytes behind it.
    frame = struct.pack(">hhih", 10, 0, 1, -1) + struct.pack(">h", 1000) + b"abc"
    with pytest.raises(ProtocolError):
        decode_request(frame, SUPPORTED_VERSIONS)
