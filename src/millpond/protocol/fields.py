"""Encoders for the length-prefixed fields shared by the hand-written responses.

string        int16 length + UTF-8 (-1 = null); flexible: unsigned varint length + 1 (0 = null)
array length  int32 count (-1 = null);          flexible: unsigned varint count + 1 (0 = null)
"""

from __future__ import annotations

import struct

from millpond.protocol.varint import encode_uvarint

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def encode_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\x00" if flexible else _INT16.pack(-1)
    encoded = value.encode()
    if flexible:
        return encode_uvarint(len(encoded) + 1) + encoded
    return _INT16.pack(len(encoded)) + encoded


def encode_array_length(count: int, flexible: bool) -> bytes:
    return encode_uvarint(count + 1) if flexible else _INT32.pack(count)
