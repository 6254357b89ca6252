"""OffsetFetch (API 9): a group's committed offsets; v8+ several groups per request.

Unknown groups and partitions answer offset -1 with no error, as Kafka does. RequireStable
(v7+) concerns pending transactional commits only, which this broker never has.
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


def _topics(ctx: BrokerContext, group_id: str, requested: Any) -> list[dict[str, Any]]:
    wanted = (
        None
        if requested is None
        else [(topic.name, list(topic.partition_indexes)) for topic in requested]
    )
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, partition, value in ctx.coordinator.offsets.fetch(group_id, wanted):
        by_topic.setdefault(topic, []).append(
            {
                "partition_index": partition,
                "committed_offset": -1 if value is None else value.offset,
                "committed_leader_epoch": -1 if value is None else value.leader_epoch,
                "metadata": "" if value is None else value.metadata,
                "error_code": ErrorCode.none,
            }
        )
    if wanted is not None:
        for name, partitions in wanted:
            if not partitions:
                by_topic.setdefault(name, [])
    return [{"name": name, "partitions": partitions} for name, partitions in by_topic.items()]


async def handle_offset_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    if header.api_version >= 8:
        response: dict[str, Any] = {
            "throttle_time": datetime.timedelta(0),
            "groups": [
                {
                    "group_id": group.group_id,
                    "topics": _topics(ctx, group.group_id, group.topics),
                    "error_code": ErrorCode.none,
                }
                for group in request.groups
            ],
        }
    else:
        response = {
            "throttle_time": datetime.timedelta(0),
            "topics": _topics(ctx, request.group_id, request.topics),
            "error_code": ErrorCode.none,
        }
    return build(response_type(header.api_key, header.api_version), response)
