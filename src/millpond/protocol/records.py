"""The record batch (magic v2) header: the only part of a batch the broker reads.

    offset  size  field
    0       8     base_offset              \
    8       4     batch_length              | outside the CRC: patched in place
    12      4     partition_leader_epoch   /
    16      1     magic (= 2)
    17      4     crc (CRC-32C of bytes 21..end)
    21      2     attributes   bits 0-2 compression, 3 timestamp type (1 = LogAppendTime),
                               4 transactional, 5 control
    23      4     last_offset_delta
    27      8     base_timestamp
    35      8     max_timestamp
    43      8     producer_id
    51      2     producer_epoch
    53      4     base_sequence
    57      4     records_count
    61      ...   records (opaque; possibly compressed)

`batch_length` counts the bytes after itself, so a batch occupies `12 + batch_length` bytes.
Everything here is big-endian, as on the wire.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from crc32c import crc32c

from millpond.protocol.varint import read_varint

BATCH_HEADER_SIZE = 61
LOG_OVERHEAD = 12  # base_offset + batch_length: the part that precedes batch_length's count
LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35
CURRENT_MAGIC = 2

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
NO_PRODUCER_ID = -1
NO_SEQUENCE = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_BASE_OFFSET = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_TIMESTAMP = struct.Struct(">q")
_CRC = struct.Struct(">I")
_ATTRIBUTES = struct.Struct(">h")


class InvalidRecordError(ValueError):
    """The bytes are not a well-formed v2 record batch (Kafka's CORRUPT_MESSAGE)."""


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The decoded 61-byte header of one batch, plus where it sits in its buffer."""

    position: int
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        # Sequences wrap at int32 max back to 0, as Kafka's DefaultRecordBatch.incrementSequence.
        return (self.base_sequence + self.last_offset_delta) % 0x80000000

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id != NO_PRODUCER_ID


def read_header(buffer: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    """Decode the header of the batch starting at `position`.

    Raises InvalidRecordError if fewer than 61 bytes remain, the magic is not 2, or the
    batch length is too small to hold a header. The CRC is not checked here.
    """
    if len(buffer) - position < BATCH_HEADER_SIZE:
        raise InvalidRecordError("record batch shorter than its 61-byte header")
    fields = _HEADER.unpack_from(buffer, position)
    header = BatchHeader(position, *fields)
    if header.magic != CURRENT_MAGIC:
        raise InvalidRecordError(f"unsupported record batch magic {header.magic}")
    if header.batch_length < BATCH_HEADER_SIZE - LOG_OVERHEAD:
        raise InvalidRecordError(f"record batch length {header.batch_length} is too small")
    if header.last_offset_delta < 0 or header.records_count < 0:
        raise InvalidRecordError("record batch has a negative offset delta or count")
    return header


def read_offset_and_length(
    buffer: bytes | bytearray | memoryview, position: int
) -> tuple[int, int]:
    """The (base_offset, batch_length) pair that starts every batch."""
    base_offset, batch_length = _OFFSET_AND_LENGTH.unpack_from(buffer, position)
    return base_offset, batch_length


def crc_matches(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> bool:
    """True if the stored CRC-32C covers bytes 21..end of the batch correctly."""
    start = header.position + ATTRIBUTES_OFFSET
    end = header.position + header.size
    return crc32c(memoryview(buffer)[start:end]) == header.crc


def iter_batches(
    buffer: bytes | bytearray | memoryview, *, verify_crc: bool = True
) -> Iterator[BatchHeader]:
    """Walk every batch in `buffer`, which must hold whole batches and nothing else.

    Raises InvalidRecordError on a truncated batch, a bad magic or a CRC mismatch.
    """
    position = 0
    total = len(buffer)
    while position < total:
        header = read_header(buffer, position)
        if position + header.size > total:
            raise InvalidRecordError("record batch runs past the end of the records")
        if verify_crc and not crc_matches(buffer, header):
            raise InvalidRecordError("record batch CRC-32C does not match")
        yield header
        position += header.size


def set_base_offset(buffer: bytearray | memoryview, position: int, base_offset: int) -> None:
    """Patch a batch's base offset in place (outside the CRC, so nothing else changes)."""
    _BASE_OFFSET.pack_into(buffer, position, base_offset)


def set_partition_leader_epoch(buffer: bytearray | memoryview, position: int, epoch: int) -> None:
    """Patch a batch's partition leader epoch in place (outside the CRC, like base_offset)."""
    _INT32.pack_into(buffer, position + LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buffer: bytearray | memoryview, header: BatchHeader, now_ms: int) -> None:
    """Stamp a batch with the broker's clock (topic `message.timestamp.type=LogAppendTime`).

    Sets the timestamp-type bit and max_timestamp, then recomputes the CRC, as Kafka's
    LogValidator does.
    """
    position = header.position
    _ATTRIBUTES.pack_into(
        buffer, position + ATTRIBUTES_OFFSET, header.attributes | TIMESTAMP_TYPE_MASK
    )
    _TIMESTAMP.pack_into(buffer, position + MAX_TIMESTAMP_OFFSET, now_ms)
    crc = crc32c(memoryview(buffer)[position + ATTRIBUTES_OFFSET : position + header.size])
    _CRC.pack_into(buffer, position + CRC_OFFSET, crc)


def iter_record_offsets_and_timestamps(
    buffer: bytes | bytearray | memoryview, header: BatchHeader
) -> Iterator[tuple[int, int]]:
    """(offset, timestamp) of each record of an uncompressed batch held whole in `buffer`.

    Each record starts: length varint, attributes int8, timestampDelta varlong, offsetDelta
    varint (then key, value, headers, which are skipped via the length). The timestamps are
    the producer's (CreateTime); a LogAppendTime batch's records all carry max_timestamp.
    Raises InvalidRecordError if the batch is compressed or its records do not parse.
    """
    if header.attributes & COMPRESSION_MASK:
        raise InvalidRecordError("record batch is compressed")
    position = header.position + BATCH_HEADER_SIZE
    end = header.position + header.size
    try:
        for _ in range(header.records_count):
            length, body = read_varint(buffer, position)
            if length < 0 or body + length > end:
                raise InvalidRecordError("record runs past the end of its batch")
            timestamp_delta, after = read_varint(buffer, body + 1)  # + 1: attributes
            offset_delta, _ = read_varint(buffer, after)
            yield header.base_offset + offset_delta, header.base_timestamp + timestamp_delta
            position = body + length
    except (IndexError, ValueError) as error:
        raise InvalidRecordError(f"record does not parse: {error}") from error
