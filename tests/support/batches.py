"""Build real v2 record batches for tests (header + records + CRC-32C), without kio.

    batch = build_batch([b"a", b"b"], timestamps=[1000, 1001])
    records, headers = concat(batch, build_batch([b"c"]))
    log.append(records, headers)

Record layout (uncompressed, inside the batch after its 61-byte header): length varint,
attributes int8, timestampDelta varlong, offsetDelta varint, key (varint length, -1 = null),
value (varint length), header count varint (always 0 here). `compression=1` gzips that
records area, as a producer with compression.type=gzip does.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence

from crc32c import crc32c

from millpond.protocol.records import BatchHeader
from millpond.protocol.records import iter_batches

DEFAULT_TIMESTAMP = 1_700_000_000_000
_AFTER_CRC = struct.Struct(">hiqqqhii")
_BEFORE_CRC = struct.Struct(">qiibI")


def zigzag_varint(value: int) -> bytes:
    """Kafka's signed varint/varlong encoding."""
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = raw & 0x7F
        raw >>= 7
        if raw:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _nullable_bytes(value: bytes | None) -> bytes:
    if value is None:
        return zigzag_varint(-1)
    return zigzag_varint(len(value)) + value


def build_batch(
    values: Sequence[bytes] = (b"value",),
    *,
    timestamps: Sequence[int] | None = None,
    keys: Sequence[bytes | None] | None = None,
    base_offset: int = 0,
    compression: int = 0,
    log_append_time: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = 0,
    transactional: bool = False,
) -> bytearray:
    """One v2 batch holding a record per value.

    `timestamps` default to DEFAULT_TIMESTAMP for every record; `log_append_time` sets the
    timestamp-type bit and makes it the batch's max_timestamp. `compression` is the codec id
    (0 none, 1 gzip).
    """
    if not values:
        raise ValueError("a batch needs at least one record")
    stamps = list(timestamps) if timestamps is not None else [DEFAULT_TIMESTAMP] * len(values)
    names = list(keys) if keys is not None else [None] * len(values)
    if len(stamps) != len(values) or len(names) != len(values):
        raise ValueError("values, timestamps and keys differ in length")
    base_timestamp = stamps[0]
    body = bytearray()
    for delta, (key, value, stamp) in enumerate(zip(names, values, stamps, strict=True)):
        record = (
            b"\x00"
            + zigzag_varint(stamp - base_timestamp)
            + zigzag_varint(delta)
            + _nullable_bytes(key)
            + _nullable_bytes(value)
            + zigzag_varint(0)
        )
        body += zigzag_varint(len(record)) + record
    if compression == 1:
        body = bytearray(gzip.compress(bytes(body), mtime=0))
    elif compression != 0:
        raise ValueError(f"unsupported compression {compression}")
    attributes = compression
    max_timestamp = max(stamps)
    if log_append_time is not None:
        attributes |= 0x08
        max_timestamp = log_append_time
    if transactional:
        attributes |= 0x10
    after_crc = (
        _AFTER_CRC.pack(
            attributes,
            len(values) - 1,
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            len(values),
        )
        + body
    )
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, then the rest
    prefix = _BEFORE_CRC.pack(
        base_offset, batch_length, partition_leader_epoch, 2, crc32c(after_crc)
    )
    return bytearray(prefix + after_crc)


def concat(*batches: bytes | bytearray) -> tuple[bytearray, list[BatchHeader]]:
    """The batches back to back, and their headers, as Log.append takes them."""
    records = bytearray(b"".join(batches))
    return records, list(iter_batches(records))


def headers_of(data: bytes | bytearray) -> list[BatchHeader]:
    """Headers of every batch in `data` (CRC checked), e.g. of a Log.read result."""
    return list(iter_batches(data))
