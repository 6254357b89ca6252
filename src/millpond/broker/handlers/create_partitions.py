"""CreatePartitions (API 37): grow a topic's partition count."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.log_manager import TopicError


async def handle_create_partitions(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    results = []
    for topic in request.topics:
        entry: dict[str, Any] = {
            "name": topic.name,
            "error_code": ErrorCode.none,
            "error_message": None,
        }
        results.append(entry)
        if topic.assignments and any(
            tuple(a.broker_ids) != (ctx.node_id,) for a in topic.assignments
        ):
            entry["error_code"] = ErrorCode.invalid_replica_assignment
            entry["error_message"] = f"every replica must be on broker {ctx.node_id}, the only one"
            continue
        try:
            ctx.logs.create_partitions(topic.name, topic.count, validate_only=request.validate_only)
        except TopicError as error:
            entry["error_code"] = ErrorCode[error.code]
            entry["error_message"] = str(error)
    response = {"throttle_time": datetime.timedelta(0), "results": results}
    return build(response_type(header.api_key, header.api_version), response)
