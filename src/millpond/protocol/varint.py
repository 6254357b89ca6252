"""Kafka's variable-length integers.

    unsigned varint   7 bits per byte, least significant group first, high bit = more follow
                      (flexible versions' lengths and tag counts: "compact" N + 1)
    signed varint     zigzag-mapped, (n << 1) ^ (n >> 63), then as above (record fields)

Readers return (value, position after it); they raise IndexError on a truncated buffer and
ValueError on an over-long encoding, for callers to turn into their own protocol error.
"""

from __future__ import annotations

_MAX_SHIFT = 63


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_varint(value: int) -> bytes:
    return encode_uvarint((value << 1) ^ (value >> 63))


def read_uvarint(buffer: bytes | bytearray | memoryview, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > _MAX_SHIFT:
            raise ValueError("varint longer than 10 bytes")


def read_varint(buffer: bytes | bytearray | memoryview, position: int) -> tuple[int, int]:
    raw, position = read_uvarint(buffer, position)
    return (raw >> 1) ^ -(raw & 1), position
