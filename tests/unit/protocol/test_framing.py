from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millpond.protocol.framing import FrameReader
from millpond.protocol.framing import FrameTooLarge
from millpond.protocol.framing import FramingError


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


@given(
    payloads=st.lists(st.binary(max_size=300_000), max_size=5),
    cuts=st.lists(st.integers(min_value=1, max_value=100_000), max_size=30),
)
def test_frames_survive_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(framed(p) for p in payloads)
    reader = FrameReader(max_frame_bytes=1 << 20)
    received: list[bytes] = []
    position = 0
    for cut in cuts:
        reader.receive_data(stream[position : position + cut])
        received.extend(bytes(f) for f in reader.frames())
        position += cut
    reader.receive_data(stream[position:])
    received.extend(bytes(f) for f in reader.frames())
    assert received == payloads
    assert not reader.mid_frame


def test_buffered_protocol_path_fills_large_frame_in_place() -> None:
    payload = bytes(range(256)) * 1000
    stream = framed(payload)
    reader = FrameReader(max_frame_bytes=1 << 20)
    position = 0
    while position < len(stream):
        buffer = reader.get_buffer()
        count = min(len(buffer), 10_000, len(stream) - position)
        buffer[:count] = stream[position : position + count]
        reader.buffer_updated(count)
        position += count
    assert [bytes(f) for f in reader.frames()] == [payload]


def test_oversized_frame_is_refused() -> None:
    reader = FrameReader(max_frame_bytes=100)
    with pytest.raises(FrameTooLarge, match=r"socket\.request\.max\.bytes=100"):
        reader.receive_data(struct.pack(">i", 101))


def test_negative_frame_size_is_refused() -> None:
    reader = FrameReader(max_frame_bytes=100)
    with pytest.raises(FramingError):
        reader.receive_data(struct.pack(">i", -5))


def test_a_huge_announced_frame_allocates_only_what_arrives() -> None:
    reader = FrameReader(max_frame_bytes=100 << 20)
    reader.receive_data(struct.pack(">i", 90 << 20) + b"x" * 10)
    assert len(reader.get_buffer()) <= (1 << 20), "no 90 MiB buffer for 10 bytes"


@given(size=st.integers(0, 3 << 20), step=st.integers(1, 700_000))
def test_frames_larger_than_a_chunk_reassemble(size: int, step: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    stream = framed(payload) + framed(b"next")
    reader = FrameReader(max_frame_bytes=4 << 20)
    for position in range(0, len(stream), step):
        reader.receive_data(stream[position : position + step])
    assert [bytes(f) for f in reader.frames()] == [payload, b"next"]
