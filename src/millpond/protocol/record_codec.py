"""Records inside a v2 batch: decoding (every codec) and building batches.

The hot path never looks inside a batch; this module is for the broker's own writers
(internal topics) and readers (the log cleaner, lag). After the 61-byte header (records.py)
comes the records area, compressed as a whole when attributes bits 0-2 are non-zero
(1 gzip, 2 snappy, 3 lz4 frame, 4 zstd). Each record:

    length          varint (zigzag), bytes that follow
    attributes      int8 (unused, 0)
    timestampDelta  varlong, from the batch's base_timestamp
    offsetDelta     varint, from the batch's base_offset
    key             varint length (-1 = null), bytes
    value           varint length (-1 = null), bytes
    headers         varint count, then per header: key (varint length, bytes),
                    value (varint length, -1 = null, bytes)

Snappy comes in two framings: raw blocks (librdkafka) and xerial's ("\\x82SNAPPY\\x00", a
16-byte header, then int32-length-prefixed raw blocks; the Java client).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import cramjam
from crc32c import crc32c

from millpond.protocol.records import BATCH_HEADER_SIZE
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.varint import encode_varint
from millpond.protocol.varint import read_varint

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4
_CODEC_MASK = 0x07
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16
_INT32 = struct.Struct(">i")
_AFTER_CRC = struct.Struct(">hiqqqhii")
_BEFORE_CRC = struct.Struct(">qiibI")


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True, slots=True)
class NewRecord:
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple[tuple[str, bytes | None], ...] = field(default=())


def _read_bytes(data: bytes | memoryview, position: int) -> tuple[bytes | None, int]:
    length, position = read_varint(data, position)
    if length < 0:
        return None, position
    end = position + length
    if end > len(data):
        raise InvalidRecordError("record field runs past the end of the batch")
    return bytes(data[position:end]), end


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """The records area of a batch, uncompressed; raises InvalidRecordError."""
    try:
        if codec == COMPRESSION_NONE:
            return bytes(data)
        if codec == COMPRESSION_GZIP:
            return gzip.decompress(data)
        if codec == COMPRESSION_SNAPPY:
            raw = bytes(data)
            if raw.startswith(_XERIAL_MAGIC):
                out = bytearray()
                position = _XERIAL_HEADER
                while position < len(raw):
                    (size,) = _INT32.unpack_from(raw, position)
                    position += 4
                    out += bytes(cramjam.snappy.decompress_raw(raw[position : position + size]))
                    position += size
                return bytes(out)
            return bytes(cramjam.snappy.decompress_raw(raw))
        if codec == COMPRESSION_LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if codec == COMPRESSION_ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except (OSError, ValueError, EOFError, struct.error, cramjam.DecompressionError) as error:
        raise InvalidRecordError(f"cannot decompress records: {error}") from error
    raise InvalidRecordError(f"unknown compression codec {codec}")


def compress(codec: int, data: bytes) -> bytes:
    if codec == COMPRESSION_NONE:
        return data
    if codec == COMPRESSION_GZIP:
        return gzip.compress(data, mtime=0)
    if codec == COMPRESSION_SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == COMPRESSION_LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise ValueError(f"unknown compression codec {codec}")


def iter_records(buffer: bytes | bytearray | memoryview, header: BatchHeader) -> Iterator[Record]:
    """Decode every record of the batch `header` describes; raises InvalidRecordError."""
    start = header.position + BATCH_HEADER_SIZE
    end = header.position + header.size
    area = decompress(header.attributes & _CODEC_MASK, memoryview(buffer)[start:end])
    position = 0
    for _ in range(header.records_count):
        try:
            record, position = _decode_record(area, position, header)
        except InvalidRecordError:
            raise
        except (IndexError, ValueError) as error:
            raise InvalidRecordError(f"record does not parse: {error}") from error
        yield record


def _decode_record(area: bytes, position: int, header: BatchHeader) -> tuple[Record, int]:
    length, position = read_varint(area, position)
    record_end = position + length
    if length < 0 or record_end > len(area):
        raise InvalidRecordError("record runs past the end of the batch")
    position += 1  # attributes
    timestamp_delta, position = read_varint(area, position)
    offset_delta, position = read_varint(area, position)
    key, position = _read_bytes(area, position)
    value, position = _read_bytes(area, position)
    count, position = read_varint(area, position)
    headers = []
    for _ in range(count):
        name, position = _read_bytes(area, position)
        header_value, position = _read_bytes(area, position)
        headers.append(((name or b"").decode(errors="replace"), header_value))
    if position != record_end:
        raise InvalidRecordError("record length disagrees with its fields")
    record = Record(
        header.base_offset + offset_delta,
        header.base_timestamp + timestamp_delta,
        key,
        value,
        tuple(headers),
    )
    return record, position


def _field(value: bytes | None) -> bytes:
    return encode_varint(-1) if value is None else encode_varint(len(value)) + value


def encode_batch(
    records: Sequence[NewRecord],
    *,
    base_offset: int = 0,
    offset_deltas: Sequence[int] | None = None,
    compression: int = COMPRESSION_NONE,
    log_append_time: bool = False,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    last_offset_delta: int | None = None,
) -> bytearray:
    """A whole v2 batch holding `records`, CRC computed; raises ValueError when empty.

    `offset_deltas` (default 0, 1, 2…) lets a cleaner keep original offsets with gaps, and
    `last_offset_delta` keeps the original batch's span even when its last record is gone.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    deltas = list(offset_deltas) if offset_deltas is not None else list(range(len(records)))
    base_timestamp = min(record.timestamp for record in records)
    body = bytearray()
    for delta, record in zip(deltas, records, strict=True):
        encoded = (
            b"\x00"
            + encode_varint(record.timestamp - base_timestamp)
            + encode_varint(delta)
            + _field(record.key)
            + _field(record.value)
            + encode_varint(len(record.headers))
            + b"".join(_field(name.encode()) + _field(value) for name, value in record.headers)
        )
        body += encode_varint(len(encoded)) + encoded
    payload = compress(compression, bytes(body))
    attributes = compression | (0x08 if log_append_time else 0)
    max_timestamp = max(record.timestamp for record in records)
    span = last_offset_delta if last_offset_delta is not None else deltas[-1]
    after_crc = (
        _AFTER_CRC.pack(
            attributes,
            span,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            len(records),
        )
        + payload
    )
    batch_length = 4 + 1 + 4 + len(after_crc)
    prefix = _BEFORE_CRC.pack(base_offset, batch_length, -1, 2, crc32c(after_crc))
    return bytearray(prefix + after_crc)
