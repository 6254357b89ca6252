"""A hand-written FetchResponse encoder (v4-v12) that never copies record bytes.

kio's writer would copy every partition's records into one buffer; a fetch can carry tens of
megabytes, so this encoder emits the small fields as short `bytes` pieces and passes each
partition's records object through untouched, for `transport.writelines`. It is tested to be
byte-identical to kio's encoding for every version it serves.

    response header   correlation_id int32 [v12: tagged fields, empty]
    throttle_time_ms  int32
    error_code        int16   v7+
    session_id        int32   v7+
    responses         array (compact v12) of
      topic             string (compact v12)
      partitions        array (compact v12) of
        partition_index        int32
        error_code             int16
        high_watermark         int64
        last_stable_offset     int64
        log_start_offset       int64   v5+
        aborted_transactions   nullable array of (producer_id int64, first_offset int64)
        preferred_read_replica int32   v11+
        records                nullable bytes (compact v12)
        [v12: tagged fields, empty: diverging_epoch, current_leader, snapshot_id at defaults]
      [v12: tagged fields, empty]
    [v12: tagged fields, empty]
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from millpond.protocol.fields import encode_array_length
from millpond.protocol.fields import encode_string
from millpond.protocol.varint import encode_uvarint

FLEXIBLE_FROM = 12

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_TOP_V7 = struct.Struct(">ihi")  # throttle, error_code, session_id
_PARTITION = struct.Struct(">ihqq")  # index, error_code, high_watermark, last_stable_offset
_INT64 = struct.Struct(">q")
_NULL_ARRAY_LEGACY = _INT32.pack(-1)
_NULL_COMPACT = b"\x00"
_NO_TAGS = b"\x00"


@dataclass(frozen=True, slots=True)
class FetchedPartition:
    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: bytes | memoryview | None
    preferred_read_replica: int = -1


def encode_fetch_response(
    version: int,
    correlation_id: int,
    *,
    error_code: int,
    session_id: int,
    topics: Sequence[tuple[str, Sequence[FetchedPartition]]],
    throttle_time_ms: int = 0,
) -> list[bytes | memoryview]:
    """The response as pieces to write in order, size prefix first.

    Aborted transactions are always null: this broker has no transactions.
    """
    if not 4 <= version <= FLEXIBLE_FROM:
        raise ValueError(f"FetchResponse v{version} is not served by this encoder")
    flexible = version >= FLEXIBLE_FROM
    pieces: list[bytes | memoryview] = []
    head = bytearray(_INT32.pack(correlation_id))
    if flexible:
        head += _NO_TAGS
    if version >= 7:
        head += _TOP_V7.pack(throttle_time_ms, error_code, session_id)
    else:
        head += _INT32.pack(throttle_time_ms)
    head += encode_array_length(len(topics), flexible)
    for name, partitions in topics:
        head += encode_string(name, flexible)
        head += encode_array_length(len(partitions), flexible)
        for partition in partitions:
            head += _PARTITION.pack(
                partition.partition_index,
                partition.error_code,
                partition.high_watermark,
                partition.last_stable_offset,
            )
            if version >= 5:
                head += _INT64.pack(partition.log_start_offset)
            head += _NULL_COMPACT if flexible else _NULL_ARRAY_LEGACY
            if version >= 11:
                head += _INT32.pack(partition.preferred_read_replica)
            records = partition.records
            if records is None:
                head += _NULL_COMPACT if flexible else _NULL_ARRAY_LEGACY
            else:
                size = len(records)
                head += encode_uvarint(size + 1) if flexible else _INT32.pack(size)
                if size:
                    pieces.append(bytes(head))
                    pieces.append(records)
                    head = bytearray()
            if flexible:
                head += _NO_TAGS
        if flexible:
            head += _NO_TAGS
    if flexible:
        head += _NO_TAGS
    pieces.append(bytes(head))
    total = sum(len(piece) for piece in pieces)
    pieces.insert(0, _INT32.pack(total))
    return pieces
