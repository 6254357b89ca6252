"""Hostile bytes into the sans-I/O request path: FrameReader, then decode_request.

The contract under test: whatever a peer sends, framing raises only FramingError and decoding
only ProtocolError or UnsupportedRequest (the shell turns each into a closed connection). Any
other exception would escape `KafkaConnection.buffer_updated` into the event loop.

Bounded for the normal run (a few thousand examples, well under 20 s); `fuzz/fuzz_decoder.py`
runs the same decode path under atheris for long runs by hand.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from millpond.broker.apis import SUPPORTED_VERSIONS
from millpond.protocol.codec import decode_request
from millpond.protocol.codec import request_type
from millpond.protocol.framing import FrameReader
from millpond.protocol.framing import FramingError
from tests.fuzz.decoder_worker import Crash
from tests.fuzz.decoder_worker import IsolatedDecoder
from tests.fuzz.mutations import ALL_VERSIONS
from tests.fuzz.mutations import BOUNDARY_INT32
from tests.fuzz.mutations import HUGE_COMPACT_ARRAY
from tests.fuzz.mutations import MUTATION
from tests.fuzz.mutations import Mutation
from tests.fuzz.mutations import apply_mutations
from tests.fuzz.mutations import encode_request

# Any process crash fails (the kio abort on hostile array lengths is now refused by
# protocol/guard.py); MILLPOND_FUZZ_STRICT=0 tolerates known crashes when hunting new ones.
STRICT = os.environ.get("MILLPOND_FUZZ_STRICT", "1") == "1"
# Every shrink step that kills the worker costs a restart (~0.5 s), so strict runs report the
# first aborting frame as found instead of shrinking it.
DECODER_PHASES = tuple(phase for phase in Phase if not (STRICT and phase is Phase.shrink))

_SIZE = struct.Struct(">i")


@pytest.fixture(scope="module")
def decoder() -> Iterator[IsolatedDecoder]:
    isolated = IsolatedDecoder(SUPPORTED_VERSIONS)
    try:
        yield isolated
    finally:
        isolated.close()


def assert_only_protocol_errors(outcome: str | Crash) -> None:
    """decode_request may decode, or fail with ProtocolError / UnsupportedRequest; nothing else."""
    if isinstance(outcome, Crash):
        assert outcome.known and not STRICT, outcome.describe()
        return
    assert outcome in {"decoded", "unsupported", "rejected"}, outcome


def decode_hostile(decoder: IsolatedDecoder, *frames: bytes | bytearray) -> None:
    for outcome in decoder.decode_many([bytes(frame) for frame in frames]):
        assert_only_protocol_errors(outcome)


# --- (a) framing -----------------------------------------------------------------------------


def model_frames(stream: bytes, limit: int) -> tuple[list[bytes], bool, bool]:
    """What a correct reader makes of `stream`: complete frames, whether it must fail, and
    whether bytes of an unfinished frame are left over."""
    frames: list[bytes] = []
    position = 0
    while len(stream) - position >= 4:
        (size,) = _SIZE.unpack_from(stream, position)
        if size < 0 or size > limit:
            return frames, True, False
        if len(stream) - position - 4 < size:
            return frames, False, True
        frames.append(stream[position + 4 : position + 4 + size])
        position += 4 + size
    return frames, False, position < len(stream)


def feed_in_chunks(reader: FrameReader, stream: bytes, cuts: list[int], direct: bool) -> Any:
    """Feed `stream` cut at `cuts`; returns (frames taken, FramingError or None).

    `direct` writes into get_buffer() as asyncio's BufferedProtocol does (never more than the
    buffer offered); otherwise receive_data() is used.
    """
    received: list[bytes] = []
    position = 0
    chunks = [*cuts, len(stream)]
    try:
        for cut in chunks:
            chunk = stream[position : position + cut]
            position += len(chunk)
            if direct:
                while chunk:
                    buffer = reader.get_buffer(len(chunk))
                    assert len(buffer) > 0
                    count = min(len(buffer), len(chunk))
                    buffer[:count] = chunk[:count]
                    chunk = chunk[count:]
                    reader.buffer_updated(count)
            else:
                reader.receive_data(chunk)
            received.extend(bytes(frame) for frame in reader.frames())
    except FramingError as error:
        received.extend(bytes(frame) for frame in reader.frames())
        return received, error
    return received, None


def _stream_strategy() -> st.SearchStrategy[bytes]:
    """Raw junk, and streams of frames whose size prefixes are right, wrong or hostile."""
    piece = st.one_of(
        st.binary(max_size=40).map(lambda payload: _SIZE.pack(len(payload)) + payload),
        st.sampled_from(BOUNDARY_INT32).map(_SIZE.pack),
        st.binary(max_size=12),
    )
    return st.one_of(st.binary(max_size=300), st.lists(piece, max_size=12).map(b"".join))


@settings(max_examples=600, deadline=None)
@given(
    stream=_stream_strategy(),
    cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=24),
    limit=st.integers(min_value=0, max_value=48),
    direct=st.booleans(),
)
def test_frame_reader_takes_any_bytes_in_any_chunks(
    stream: bytes, cuts: list[int], limit: int, direct: bool
) -> None:
    reader = FrameReader(max_frame_bytes=limit)
    received, error = feed_in_chunks(reader, stream, cuts, direct)
    expected, must_fail, leftover = model_frames(stream, limit)
    assert received == expected
    assert (error is not None) == must_fail, error
    if error is None:
        assert reader.mid_frame == leftover


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=1, max_value=90_000), max_size=12),
    direct=st.booleans(),
)
def test_frame_reader_reassembles_frames_larger_than_its_scratch(
    sizes: list[int], cuts: list[int], direct: bool
) -> None:
    payloads = [bytes([index + 1]) * size for index, size in enumerate(sizes)]
    stream = b"".join(_SIZE.pack(len(p)) + p for p in payloads)
    reader = FrameReader(max_frame_bytes=200_000)
    received, error = feed_in_chunks(reader, stream, cuts, direct)
    assert error is None
    assert received == payloads
    assert not reader.mid_frame


# --- (b) arbitrary frames into the decoder ---------------------------------------------------


@settings(max_examples=800, deadline=None, phases=DECODER_PHASES)
@given(frame=st.binary(max_size=400))
def test_decoder_takes_arbitrary_frames(decoder: IsolatedDecoder, frame: bytes) -> None:
    decode_hostile(decoder, frame)


@settings(max_examples=1000, deadline=None, phases=DECODER_PHASES)
@given(
    api=st.sampled_from(ALL_VERSIONS),
    correlation_id=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    client_id_length=st.sampled_from([-1, 0, 3, 4, 200, -2, 0x7FFF]),
    body=st.binary(max_size=400),
)
def test_decoder_takes_arbitrary_bodies_behind_valid_headers(
    decoder: IsolatedDecoder,
    api: tuple[int, int],
    correlation_id: int,
    client_id_length: int,
    body: bytes,
) -> None:
    api_key, version = api
    frame = struct.pack(">hhih", api_key, version, correlation_id, client_id_length) + body
    decode_hostile(decoder, frame)


# --- (c) structure-aware mutations of valid requests -----------------------------------------


@settings(
    max_examples=1000,
    deadline=None,
    phases=DECODER_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    api=st.sampled_from(ALL_VERSIONS),
    data=st.data(),
    mutations=st.lists(MUTATION, min_size=1, max_size=4),
)
def test_decoder_takes_mutated_valid_requests(
    decoder: IsolatedDecoder,
    api: tuple[int, int],
    data: st.DataObject,
    mutations: list[Mutation],
) -> None:
    api_key, version = api
    body = data.draw(st.from_type(request_type(api_key, version)), label="body")
    frame = encode_request(api_key, version, body)
    decode_hostile(decoder, apply_mutations(frame, mutations))


@pytest.mark.parametrize(("api_key", "version"), ALL_VERSIONS)
@settings(
    max_examples=1,
    deadline=None,
    phases=DECODER_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_every_truncation_and_length_overwrite_of_a_valid_request(
    decoder: IsolatedDecoder, api_key: int, version: int, data: st.DataObject
) -> None:
    """Systematic, where the random mutations are sparse: every prefix of one valid request,
    and every position overwritten with the int32 values that break length fields."""
    body = data.draw(st.from_type(request_type(api_key, version)), label="body")
    frame = encode_request(api_key, version, body)
    _header, decoded = decode_request(frame, SUPPORTED_VERSIONS)
    assert decoded == body
    mutated_frames = [frame[:length] for length in range(len(frame))]
    for position in range(8, len(frame)):
        for value in (-1, 0x7FFFFFFF, -0x80000000):
            mutated = bytearray(frame)
            mutated[position : position + 4] = _SIZE.pack(value)
            mutated_frames.append(bytes(mutated))
        mutated = bytearray(frame)
        mutated[position] = 0xFF
        mutated_frames.append(bytes(mutated))
    decode_hostile(decoder, *mutated_frames)


# --- the bug this fuzzing found --------------------------------------------------------------


def test_known_decoder_abort(decoder: IsolatedDecoder) -> None:
    outcome = decoder.decode(HUGE_COMPACT_ARRAY)
    assert outcome == "rejected", outcome.describe() if isinstance(outcome, Crash) else outcome
