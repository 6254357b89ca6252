"""Records inside a v2 batch: decoding (every codec) and building batches.

The hot path never looks inside a batch; this module is for the broker's own writers
(internal topics) and readers (the log cleaner, lag, produce-time schema validation and
compacted topics' null-key check). After the 61-byte header (records.py)
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

A records area may inflate to MAX_RECORDS_AREA_BYTES at most: decompressing stops there (a
compression bomb is refused as an invalid record) rather than after inflating it whole.
"""

from __future__ import annotations

import gzip
import mmap
import struct
import threading
import zlib
from collections.abc import Callable
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
# The most a batch's records area may inflate to before the broker gives up on it. The
# compressed size is bounded by max.message.bytes (1 MiB by default), but 1 MiB of zstd can
# inflate to gigabytes (of zeros, say), and every reader here inflates a whole batch at once,
# so without a cap one produce to a validated or compacted topic could cost the broker
# gigabytes. 64 MiB is 64 times the default max.message.bytes and far above what clients
# build (their batch.size and message size limits are about 1 MB before compression). A
# bigger batch is still stored and fetched on a plain topic, whose produce path never looks
# inside it; the checks that do (schema validation, compacted null keys) refuse it.
MAX_RECORDS_AREA_BYTES = 64 * 1024 * 1024
# gzip framing only (16 + the 15-bit window), as gzip.decompress accepts.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_GZIP_STEP = 1024 * 1024
# What cramjam says when the output buffer given to decompress_into is full.
_OUTPUT_FULL = "failed to write whole buffer"


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


def decompress(
    codec: int, data: bytes | memoryview, *, limit: int = MAX_RECORDS_AREA_BYTES
) -> bytes:
    """The records area of a batch, uncompressed; raises InvalidRecordError.

    Also raises it, naming the cap, when the area would inflate past `limit` bytes: never
    holding more than about `limit` bytes of output while finding that out.
    """
    try:
        if codec == COMPRESSION_NONE:
            # Already in memory at its full size: there is no amplification to bound.
            return bytes(data)
        if codec == COMPRESSION_GZIP:
            return _gunzip(data, limit)
        if codec == COMPRESSION_SNAPPY:
            return _unsnappy(bytes(data), limit)
        if codec == COMPRESSION_LZ4:
            return _decompress_into(cramjam.lz4.decompress_into, data, limit)
        if codec == COMPRESSION_ZSTD:
            return _decompress_into(cramjam.zstd.decompress_into, data, limit)
    except InvalidRecordError:
        raise
    except (
        OSError,
        ValueError,
        EOFError,
        struct.error,
        zlib.error,
        cramjam.DecompressionError,
    ) as error:
        raise InvalidRecordError(f"cannot decompress records: {error}") from error
    raise InvalidRecordError(f"unknown compression codec {codec}")


def _too_large(limit: int) -> InvalidRecordError:
    return InvalidRecordError(
        f"records area inflates past {_describe(limit)} uncompressed (the per-batch cap)"
    )


def _describe(size: int) -> str:
    mib = 1024 * 1024
    return f"{size // mib} MiB" if size % mib == 0 else f"{size} bytes"


def _gunzip(data: bytes | memoryview, limit: int) -> bytes:
    # One gzip member after another, as gzip.decompress reads them (zero padding between
    # members skipped too); zlib checks each member's CRC and length trailer. Inflating a step
    # at a time stops a bomb one step past the cap, where a single call would also hold a
    # second copy of everything while joining its output blocks.
    chunks: list[bytes] = []
    produced = 0
    rest = bytes(data)
    while rest:
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        pending = rest
        while not inflater.eof:
            chunk = inflater.decompress(pending, _GZIP_STEP)
            pending = inflater.unconsumed_tail
            produced += len(chunk)
            if produced > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if len(chunk) < _GZIP_STEP and not inflater.eof:
                # Below the step, zlib ran out of input before the end of the member.
                raise EOFError("gzip member ends before its end-of-stream marker")
        rest = inflater.unused_data.lstrip(b"\x00")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _unsnappy(raw: bytes, limit: int) -> bytes:
    # A raw snappy block starts with its uncompressed length (a varint), which the
    # decompressor allocates up front and then must fill exactly: checking it first bounds
    # memory. Xerial chunks are raw blocks, so their lengths are summed as they come.
    if not raw.startswith(_XERIAL_MAGIC):
        if cramjam.snappy.decompress_raw_len(raw) > limit:
            raise _too_large(limit)
        return bytes(cramjam.snappy.decompress_raw(raw))
    out = bytearray()
    position = _XERIAL_HEADER
    while position < len(raw):
        (size,) = _INT32.unpack_from(raw, position)
        position += 4
        block = raw[position : position + size]
        if len(out) + cramjam.snappy.decompress_raw_len(block) > limit:
            raise _too_large(limit)
        out += bytes(cramjam.snappy.decompress_raw(block))
        position += size
    return bytes(out)


def _decompress_into(
    decompress_into: Callable[[bytes | memoryview, memoryview], int],
    data: bytes | memoryview,
    limit: int,
) -> bytes:
    # Neither an lz4 frame nor a zstd frame has to declare its content size, so the output
    # goes to a buffer one byte larger than allowed, which the decompressor cannot grow: a
    # bomb fails when it is full. cramjam's own decompress would grow its output without end.
    scratch = _scratch(limit + 1)
    touched = limit + 1
    try:
        with memoryview(scratch)[: limit + 1] as out:
            try:
                touched = decompress_into(data, out)
            except cramjam.DecompressionError as error:
                if _OUTPUT_FULL in str(error):
                    raise _too_large(limit) from error
                raise
            if touched > limit:
                raise _too_large(limit)
            return bytes(out[:touched])
    finally:
        if touched > _SCRATCH_KEPT:
            scratch.madvise(mmap.MADV_DONTNEED, _SCRATCH_KEPT)


class _ThreadScratch(threading.local):
    buffer: mmap.mmap | None = None


# One output buffer per thread (the event loop's, the cleaner's workers), reused: a fresh
# buffer per batch costs a page fault for every 4 KiB written, which doubled the time to
# decompress a 100 KB zstd batch. An anonymous mapping, not a bytearray, because its pages
# cost memory only once written, and are handed back (madvise) past the first
# _SCRATCH_KEPT bytes after each use, so a bomb or a rare big batch does not stay resident.
_thread_scratch = _ThreadScratch()
_SCRATCH_KEPT = 2 * 1024 * 1024


def _scratch(size: int) -> mmap.mmap:
    if size > MAX_RECORDS_AREA_BYTES + 1:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    if _thread_scratch.buffer is None:
        _thread_scratch.buffer = mmap.mmap(-1, MAX_RECORDS_AREA_BYTES + 1, flags=mmap.MAP_PRIVATE)
    return _thread_scratch.buffer


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
