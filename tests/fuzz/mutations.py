"""Byte-level mutations of valid requests, shared by the in-process and live-broker fuzz tests.

A mutation is a small tuple so hypothesis can shrink it and `random.Random` can draw it:

    ("flip", position, bit)           flip one bit
    ("set", position, byte)           overwrite one byte
    ("int32", position, value)        overwrite 4 bytes with a boundary int32 (length fields)
    ("insert", position, data)        insert bytes
    ("delete", position, count)       delete bytes
    ("truncate", length)              cut the frame to `length`

Positions are taken modulo the current frame length, so any drawn mutation applies to any frame.
"""

from __future__ import annotations

import io
import random
import struct
from typing import Any

from hypothesis import strategies as st
from kio.serial import entity_writer

from millpond.broker.apis import SUPPORTED_VERSIONS

Mutation = tuple[Any, ...]

ALL_VERSIONS = [
    (key, version)
    for key, (low, high) in SUPPORTED_VERSIONS.items()
    for version in range(low, high + 1)
]

# Values that make length and count fields interesting: empty, null, one past, huge, negative.
BOUNDARY_INT32 = (0, 1, -1, -2, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, -0x80000000)

# The smallest request found that aborts the decoder (kio 0.6.5): Metadata v9 (flexible), empty
# client id, no tagged fields, then the topics compact array with length varint 0xFFFFFFFF
# (2**32 - 2 topics) and three bytes of body. kio's native reader pre-allocates a Vec for the
# declared length; the allocation fails and Rust aborts the process.
HUGE_COMPACT_ARRAY = bytes.fromhex("0003000900000001000000ffffffff0f000000")


def encode_request(api_key: int, version: int, body: Any, correlation_id: int = 7) -> bytes:
    """A request frame (no size prefix): header v1/v2, then kio's encoding of `body`."""
    buffer = io.BytesIO()
    client_id = b"fuzz"
    buffer.write(struct.pack(">hhih", api_key, version, correlation_id, len(client_id)))
    buffer.write(client_id)
    if type(body).__flexible__:
        buffer.write(b"\0")
    entity_writer(type(body))(buffer, body)
    return buffer.getvalue()


def apply_mutation(frame: bytes, mutation: Mutation) -> bytes:
    data = bytearray(frame)
    kind = mutation[0]
    if kind == "truncate":
        return bytes(data[: mutation[1] % (len(data) + 1)])
    if kind == "insert":
        position = mutation[1] % (len(data) + 1)
        data[position:position] = mutation[2]
        return bytes(data)
    if not data:
        return b""
    position = mutation[1] % len(data)
    if kind == "flip":
        data[position] ^= 1 << mutation[2]
    elif kind == "set":
        data[position] = mutation[2]
    elif kind == "int32":
        data[position : position + 4] = struct.pack(">i", mutation[2])
    elif kind == "delete":
        del data[position : position + mutation[2]]
    else:
        raise ValueError(f"unknown mutation {kind!r}")
    return bytes(data)


def apply_mutations(frame: bytes, mutations: list[Mutation]) -> bytes:
    for mutation in mutations:
        frame = apply_mutation(frame, mutation)
    return frame


_POSITION = st.integers(min_value=0, max_value=1 << 16)

MUTATION: st.SearchStrategy[Mutation] = st.one_of(
    st.tuples(st.just("flip"), _POSITION, st.integers(0, 7)),
    st.tuples(st.just("set"), _POSITION, st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF])),
    st.tuples(st.just("int32"), _POSITION, st.sampled_from(BOUNDARY_INT32)),
    st.tuples(st.just("insert"), _POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _POSITION, st.integers(1, 16)),
    st.tuples(st.just("truncate"), _POSITION),
)


def random_mutation(rng: random.Random) -> Mutation:
    """The same mutation space as MUTATION, drawn from a seeded `random.Random`."""
    position = rng.randrange(1 << 16)
    kind = rng.choice(("flip", "set", "int32", "insert", "delete", "truncate"))
    if kind == "flip":
        return (kind, position, rng.randrange(8))
    if kind == "set":
        return (kind, position, rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    if kind == "int32":
        return (kind, position, rng.choice(BOUNDARY_INT32))
    if kind == "insert":
        return (kind, position, rng.randbytes(rng.randint(1, 16)))
    if kind == "delete":
        return (kind, position, rng.randint(1, 16))
    return (kind, position)
