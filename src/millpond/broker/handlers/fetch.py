"""Fetch (API 1): read partitions from an offset, long-polling until min_bytes or max_wait.

Sessionless: every response carries session_id 0, which tells clients (KIP-227) to keep
sending full fetch requests. The first batch of the response is returned whole even when it is
larger than max_bytes (KIP-74), so a consumer never stalls on a large batch. Records go to the
transport as read from the segment file, never copied into a response buffer.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from millpond.broker.context import BrokerContext
from millpond.protocol.codec import RawResponse
from millpond.protocol.codec import RequestHeader
from millpond.protocol.fetch_response import FetchedPartition
from millpond.protocol.fetch_response import encode_fetch_response
from millpond.storage.log import OffsetOutOfRangeError

Topics = list[tuple[str, list[FetchedPartition]]]


def _error(index: int, error: ErrorCode, log: Any = None) -> FetchedPartition:
    return FetchedPartition(
        partition_index=index,
        error_code=error,
        high_watermark=-1 if log is None else log.log_end_offset,
        last_stable_offset=-1 if log is None else log.log_end_offset,
        log_start_offset=-1 if log is None else log.log_start_offset,
        records=b"",
    )


def _read_all(ctx: BrokerContext, request: Any) -> tuple[Topics, int, bool]:
    """One pass over the requested partitions: (topics, bytes read, any error)."""
    remaining = max(request.max_bytes, 0)
    total = 0
    any_error = False
    topics_out: Topics = []
    for topic_request in request.topics:
        partitions_out: list[FetchedPartition] = []
        for partition_request in topic_request.partitions:
            index = partition_request.partition
            partition = ctx.logs.partition(topic_request.topic, index)
            if partition is None:
                partitions_out.append(_error(index, ErrorCode.unknown_topic_or_partition))
                any_error = True
                continue
            log = partition.log
            limit = min(partition_request.partition_max_bytes, remaining)
            records = b""
            if limit > 0 or total == 0:
                try:
                    records = log.read(
                        partition_request.fetch_offset, max(limit, 0), min_one_batch=total == 0
                    )
                except OffsetOutOfRangeError:
                    partitions_out.append(_error(index, ErrorCode.offset_out_of_range, log))
                    any_error = True
                    continue
                except OSError:
                    partitions_out.append(_error(index, ErrorCode.kafka_storage_error, log))
                    any_error = True
                    continue
            partitions_out.append(
                FetchedPartition(
                    partition_index=index,
                    error_code=ErrorCode.none,
                    high_watermark=log.log_end_offset,
                    last_stable_offset=log.log_end_offset,
                    log_start_offset=log.log_start_offset,
                    records=records,
                )
            )
            total += len(records)
            remaining -= len(records)
        topics_out.append((topic_request.topic, partitions_out))
    return topics_out, total, any_error


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> RawResponse:
    version = header.api_version
    session_id = getattr(request, "session_id", 0)
    session_epoch = getattr(request, "session_epoch", -1)
    if session_id != 0 and session_epoch not in (-1, 0):
        # We never hand out sessions, so an incremental fetch names one we do not know.
        pieces = encode_fetch_response(
            version,
            header.correlation_id,
            error_code=ErrorCode.fetch_session_id_not_found,
            session_id=0,
            topics=[],
        )
        return RawResponse(pieces)
    max_wait_ms = max(0, int(request.max_wait.total_seconds() * 1000))
    deadline = ctx.clock.monotonic_ms() + max_wait_ms
    keys = [
        (topic_request.topic, partition_request.partition)
        for topic_request in request.topics
        for partition_request in topic_request.partitions
    ]
    while True:
        topics_out, total, any_error = _read_all(ctx, request)
        now = ctx.clock.monotonic_ms()
        if total >= max(request.min_bytes, 1) or any_error or now >= deadline or not keys:
            break
        await ctx.appended.wait_any(keys, (deadline - now) / 1000)
    pieces = encode_fetch_response(
        version, header.correlation_id, error_code=ErrorCode.none, session_id=0, topics=topics_out
    )
    return RawResponse(pieces)
