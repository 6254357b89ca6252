"""OffsetDelete (API 47): drop a group's committed offsets for partitions it no longer reads."""

from __future__ import annotations

import datetime
from typing import Any

from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_offset_delete(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    error, results = await ctx.coordinator.offsets.delete(request.group_id, wanted)
    response = {
        "error_code": error,
        "throttle_time": datetime.timedelta(0),
        "topics": [
            {
                "name": topic.name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": results.get((topic.name, p.partition_index), error),
                    }
                    for p in topic.partitions
                ],
            }
            for topic in request.topics
        ]
        if results
        else [],
    }
    return build(response_type(header.api_key, header.api_version), response)
