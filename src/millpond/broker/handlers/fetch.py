"""Fetch (API 1): read partitions from an offset, long-polling until min_bytes or max_wait.

Sessionless: every response carries session_id 0, which tells clients (KIP-227) to keep
sending full fetch requests. The first batch of the response is returned whole even when it is
larger than max_bytes (KIP-74), so a consumer never stalls on a large batch.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.log import OffsetOutOfRangeError


def _read_all(ctx: BrokerContext, request: Any) -> tuple[list[dict[str, Any]], int, bool]:
    """One pass over the requested partitions: (topics, bytes read, any error)."""
    remaining = request.max_bytes if request.max_bytes > 0 else 0
    total = 0
    any_error = False
    topics_out: list[dict[str, Any]] = []
    for topic_request in request.topics:
        partitions_out = []
        for partition_request in topic_request.partitions:
            index = partition_request.partition
            partition = ctx.logs.partition(topic_request.topic, index)
            entry: dict[str, Any] = {
                "partition_index": index,
                "error_code": ErrorCode.none,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": None,
                "preferred_read_replica": -1,
                "records": b"",
            }
            partitions_out.append(entry)
            if partition is None:
                entry["error_code"] = ErrorCode.unknown_topic_or_partition
                any_error = True
                continue
            log = partition.log
            entry["high_watermark"] = log.log_end_offset
            entry["last_stable_offset"] = log.log_end_offset
            entry["log_start_offset"] = log.log_start_offset
            limit = min(partition_request.partition_max_bytes, remaining)
            if limit <= 0 and total > 0:
                continue
            try:
                records = log.read(
                    partition_request.fetch_offset, max(limit, 0), min_one_batch=total == 0
                )
            except OffsetOutOfRangeError:
                entry["error_code"] = ErrorCode.offset_out_of_range
                any_error = True
                continue
            except OSError:
                entry["error_code"] = ErrorCode.kafka_storage_error
                any_error = True
                continue
            entry["records"] = records
            total += len(records)
            remaining -= len(records)
        topics_out.append({"topic": topic_request.topic, "partitions": partitions_out})
    return topics_out, total, any_error


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    session_id = getattr(request, "session_id", 0)
    session_epoch = getattr(request, "session_epoch", -1)
    if session_id != 0 and session_epoch not in (-1, 0):
        # We never hand out sessions, so an incremental fetch names one we do not know.
        response = {
            "throttle_time": datetime.timedelta(0),
            "error_code": ErrorCode.fetch_session_id_not_found,
            "session_id": 0,
            "responses": (),
        }
        return build(response_type(header.api_key, header.api_version), response)
    max_wait_ms = max(0, int(request.max_wait.total_seconds() * 1000))
    deadline = ctx.clock.monotonic_ms() + max_wait_ms
    while True:
        topics_out, total, any_error = _read_all(ctx, request)
        now = ctx.clock.monotonic_ms()
        if total >= max(request.min_bytes, 1) or any_error or now >= deadline:
            break
        keys = [
            (topic_request.topic, partition_request.partition)
            for topic_request in request.topics
            for partition_request in topic_request.partitions
        ]
        if not keys:
            break
        await ctx.appended.wait_any(keys, (deadline - now) / 1000)
        if ctx.clock.monotonic_ms() >= deadline:
            topics_out, total, any_error = _read_all(ctx, request)
            break
    response = {
        "throttle_time": datetime.timedelta(0),
        "error_code": ErrorCode.none,
        "session_id": 0,
        "responses": topics_out,
    }
    return build(response_type(header.api_key, header.api_version), response)
