"""DeleteRecords (API 21): move a partition's log start offset forward."""

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

HIGH_WATERMARK = -1


def _delete(ctx: BrokerContext, topic: str, index: int, offset: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "partition_index": index,
        "low_watermark": -1,
        "error_code": ErrorCode.none,
    }
    partition = ctx.logs.partition(topic, index)
    if partition is None:
        entry["error_code"] = ErrorCode.unknown_topic_or_partition
        return entry
    if partition.topic.internal:  # as Kafka: the broker's own records are not the client's
        entry["error_code"] = ErrorCode.invalid_topic_exception
        return entry
    log = partition.log
    if offset == HIGH_WATERMARK:
        offset = log.log_end_offset
    if offset < 0 or offset > log.log_end_offset:
        entry["error_code"] = ErrorCode.offset_out_of_range
        entry["low_watermark"] = log.log_start_offset
        return entry
    try:
        entry["low_watermark"] = log.delete_records_before(max(offset, log.log_start_offset))
    except OffsetOutOfRangeError:
        entry["error_code"] = ErrorCode.offset_out_of_range
        entry["low_watermark"] = log.log_start_offset
    except OSError:
        entry["error_code"] = ErrorCode.kafka_storage_error
        return entry
    partition.producer_state.truncate_snapshots_below(log.log_start_offset)
    return entry


async def handle_delete_records(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    topics = [
        {
            "name": topic.name,
            "partitions": [
                _delete(ctx, topic.name, partition.partition_index, partition.offset)
                for partition in topic.partitions
            ],
        }
        for topic in request.topics
    ]
    response = {"throttle_time": datetime.timedelta(0), "topics": topics}
    return build(response_type(header.api_key, header.api_version), response)
