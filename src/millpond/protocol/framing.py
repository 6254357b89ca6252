"""Sans-I/O framing of the Kafka wire protocol, server side.

Every request and response on a Kafka connection is a size-prefixed frame:

    0       4     size (int32, big-endian): bytes that follow
    4       size  payload (request header + request body)

`FrameReader` owns the bytes between the socket and the request decoder. It follows asyncio's
BufferedProtocol shape (`get_buffer` / `buffer_updated`) so the shell can receive straight into
the frame being assembled, but it knows nothing of sockets or event loops, so it can be fuzzed.
"""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">i")
_SIZE_BYTES = 4
# The smallest read buffer handed out while waiting for a size prefix: large enough that many
# small requests arrive in one read, small enough not to matter per connection.
_SCRATCH_BYTES = 64 * 1024
# A frame is received into buffers of at most this size, allocated as its bytes arrive, so a
# client that announces a huge frame and sends nothing costs the broker no more than this.
_CHUNK_BYTES = 1 << 20


class FramingError(Exception):
    """The peer broke the framing rules; the connection must be closed."""


class FrameTooLarge(FramingError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request of {size} bytes exceeds socket.request.max.bytes={limit}")
        self.size = size
        self.limit = limit


class FrameReader:
    """Assembles complete frames from arbitrary chunks of a byte stream."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._scratch = bytearray(_SCRATCH_BYTES)
        self._scratch_used = 0
        # The frame being received: its announced size, the full chunks so far, and the chunk
        # being filled.
        self._frame: bytearray | None = None
        self._frame_filled = 0
        self._frame_size = 0
        self._frame_received = 0
        self._chunks: list[bytearray] = []
        self._frames: list[bytearray] = []

    def get_buffer(self, size_hint: int = -1) -> memoryview:
        """Where the next received bytes should be written."""
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_filled :]
        return memoryview(self._scratch)[self._scratch_used :]

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` were written into the last buffer from `get_buffer`.

        Raises FramingError (the caller closes the connection) on a negative or oversized frame.
        """
        if self._frame is not None:
            self._frame_filled += nbytes
            self._frame_received += nbytes
            if self._frame_filled == len(self._frame):
                self._chunk_full()
            return
        self._scratch_used += nbytes
        self._split_scratch()

    def receive_data(self, data: bytes) -> None:
        """Feed bytes (the plain-Protocol path, and tests)."""
        view = memoryview(data)
        while view:
            target = self.get_buffer()
            count = min(len(target), len(view))
            target[:count] = view[:count]
            view = view[count:]
            self.buffer_updated(count)

    def frames(self) -> list[bytearray]:
        """Take the complete frames assembled so far (each without its size prefix)."""
        frames, self._frames = self._frames, []
        return frames

    @property
    def mid_frame(self) -> bool:
        return self._frame is not None or self._scratch_used > 0

    def _chunk_full(self) -> None:
        assert self._frame is not None
        if self._frame_received < self._frame_size:
            self._chunks.append(self._frame)
            self._frame = bytearray(min(self._frame_size - self._frame_received, _CHUNK_BYTES))
            self._frame_filled = 0
            return
        if self._chunks:
            self._chunks.append(self._frame)
            self._frames.append(bytearray().join(self._chunks))
            self._chunks = []
        else:
            self._frames.append(self._frame)
        self._frame = None

    def _split_scratch(self) -> None:
        scratch = self._scratch
        position = 0
        used = self._scratch_used
        while used - position >= _SIZE_BYTES:
            (size,) = _SIZE.unpack_from(scratch, position)
            if size < 0:
                raise FramingError(f"negative frame size {size}")
            if size > self.max_frame_bytes:
                raise FrameTooLarge(size, self.max_frame_bytes)
            start = position + _SIZE_BYTES
            available = used - start
            if available >= size:
                self._frames.append(scratch[start : start + size])
                position = start + size
                continue
            self._frame_size = size
            self._frame_received = available
            self._chunks = []
            self._frame = bytearray(min(size, max(_CHUNK_BYTES, available)))
            self._frame[:available] = scratch[start:used]
            self._frame_filled = available
            position = used
            if available == len(self._frame):
                self._chunk_full()
            break
        remaining = used - position
        if remaining and position:
            scratch[:remaining] = scratch[position:used]
        self._scratch_used = remaining


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Prefix a payload with its size."""
    return _SIZE.pack(len(payload)) + bytes(payload)


def size_prefix(size: int) -> bytes:
    return _SIZE.pack(size)
