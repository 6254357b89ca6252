"""ListOffsets (API 2): earliest, latest, max timestamp, or the first offset at a time."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3


def _lookup(ctx: BrokerContext, topic: str, index: int, timestamp: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "partition_index": index,
        "error_code": ErrorCode.none,
        "timestamp": -1,
        "offset": -1,
        "leader_epoch": -1,
    }
    partition = ctx.logs.partition(topic, index)
    if partition is None:
        entry["error_code"] = ErrorCode.unknown_topic_or_partition
        return entry
    log = partition.log
    if timestamp == LATEST:
        entry["offset"] = log.log_end_offset
    elif timestamp == EARLIEST:
        entry["offset"] = log.log_start_offset
    elif timestamp == MAX_TIMESTAMP:
        found = log.max_timestamp()
        if found is not None:
            entry["timestamp"], entry["offset"] = found
    elif timestamp < 0:
        entry["error_code"] = ErrorCode.invalid_request
    else:
        match = log.offset_for_timestamp(timestamp)
        if match is not None:
            entry["offset"], entry["timestamp"] = match
    return entry


async def handle_list_offsets(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    topics = [
        {
            "name": topic.name,
            "partitions": [
                _lookup(ctx, topic.name, partition.partition_index, partition.timestamp)
                for partition in topic.partitions
            ],
        }
        for topic in request.topics
    ]
    response = {"throttle_time": datetime.timedelta(0), "topics": topics}
    return build(response_type(header.api_key, header.api_version), response)
