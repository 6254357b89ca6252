"""A hand-written decoder of Produce requests v3-9, the hot path kio would copy.

    v3-8   transactional_id  int16 length + bytes (-1 = null)
           acks int16 | timeout_ms int32
           topic_data        int32 count x (name: int16 length + bytes,
                               partition_data: int32 count x (index int32,
                                 records: int32 length + bytes, -1 = null))
    v9     the same fields, flexible: strings, arrays and bytes carry an unsigned varint of
           length + 1 (0 = null), and a tagged-field section follows every partition, every
           topic and the body

The records are returned as writable views into the request frame, not copies: the handler
patches each batch's header (offsets, leader epoch, append time) in place and appends it.
Malformed input raises ProtocolError, as kio's decoder would; the property tests check that
both agree on every field for every version.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from millpond.protocol.varint import read_uvarint

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_HEAD = struct.Struct(">hi")  # acks, timeout_ms


class ProduceDecodeError(ValueError):
    """The request's bytes do not parse as a Produce request of its version."""


@dataclass(slots=True)
class ProducePartitionData:
    index: int
    records: memoryview | None


@dataclass(slots=True)
class ProduceTopicData:
    name: str
    partition_data: list[ProducePartitionData]


@dataclass(slots=True)
class ProduceRequestData:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: list[ProduceTopicData]


class _Reader:
    __slots__ = ("data", "end", "flexible", "position")

    def __init__(self, data: memoryview, position: int, flexible: bool) -> None:
        self.data = data
        self.position = position
        self.end = len(data)
        self.flexible = flexible

    def take(self, size: int) -> int:
        start = self.position
        if size < 0 or start + size > self.end:
            raise ProduceDecodeError(f"{size} bytes wanted at {start}, {self.end - start} left")
        self.position = start + size
        return start

    def int16(self) -> int:
        value: int = _INT16.unpack_from(self.data, self.take(2))[0]
        return value

    def int32(self) -> int:
        value: int = _INT32.unpack_from(self.data, self.take(4))[0]
        return value

    def uvarint(self) -> int:
        try:
            value, self.position = read_uvarint(self.data, self.position)
        except (IndexError, ValueError) as error:
            raise ProduceDecodeError(f"bad varint: {error}") from None
        if self.position > self.end:
            raise ProduceDecodeError("varint runs past the end")
        return value

    def length(self, fixed: int) -> int:
        """A length prefix: -1 for null."""
        if self.flexible:
            return self.uvarint() - 1
        return self.int16() if fixed == 2 else self.int32()

    def string(self, *, nullable: bool) -> str | None:
        size = self.length(2)
        if size < 0:
            if size == -1 and nullable:
                return None
            raise ProduceDecodeError("null or negative string length")
        start = self.take(size)
        try:
            return str(self.data[start : start + size], "utf-8")
        except UnicodeDecodeError as error:
            raise ProduceDecodeError(f"string is not UTF-8: {error}") from None

    def count(self) -> int:
        size = self.length(4)
        if size < 0:
            raise ProduceDecodeError("null array")
        if size > self.end - self.position:  # every element takes at least one byte
            raise ProduceDecodeError(f"array of {size} cannot fit")
        return size

    def records(self) -> memoryview | None:
        size = self.length(4)
        if size < 0:
            if size == -1:
                return None
            raise ProduceDecodeError("negative records length")
        start = self.take(size)
        return self.data[start : start + size]

    def tagged_fields(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


def decode_produce_request(
    frame: bytearray | memoryview, offset: int, version: int
) -> ProduceRequestData:
    """The Produce body that starts at `offset` of `frame` (after the request header and, for
    v9, its tagged fields). Raises ProduceDecodeError."""
    view = memoryview(frame)
    reader = _Reader(view, offset, flexible=version >= 9)
    transactional_id = reader.string(nullable=True)
    acks, timeout_ms = _HEAD.unpack_from(view, reader.take(6))
    topics = []
    for _ in range(reader.count()):
        name = reader.string(nullable=False)
        assert name is not None
        partitions = []
        for _ in range(reader.count()):
            index = reader.int32()
            partitions.append(ProducePartitionData(index, reader.records()))
            reader.tagged_fields()
        reader.tagged_fields()
        topics.append(ProduceTopicData(name, partitions))
    reader.tagged_fields()
    return ProduceRequestData(transactional_id, acks, timeout_ms, topics)
