"""OffsetCommit (API 8): store a group's positions durably (answered after the fsync)."""

from __future__ import annotations

import datetime
from typing import Any

from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.coordinator.offsets import OffsetCommitEntry
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_offset_commit(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    entries = [
        OffsetCommitEntry(
            topic.name,
            partition.partition_index,
            partition.committed_offset,
            getattr(partition, "committed_leader_epoch", -1),
            partition.committed_metadata,
        )
        for topic in request.topics
        for partition in topic.partitions
    ]
    results = await ctx.coordinator.offsets.commit(
        request.group_id,
        request.generation_id_or_member_epoch,
        request.member_id,
        getattr(request, "group_instance_id", None),
        entries,
    )
    response = {
        "throttle_time": datetime.timedelta(0),
        "topics": [
            {
                "name": topic.name,
                "partitions": [
                    {
                        "partition_index": partition.partition_index,
                        "error_code": results[(topic.name, partition.partition_index)],
                    }
                    for partition in topic.partitions
                ],
            }
            for topic in request.topics
        ],
    }
    return build(response_type(header.api_key, header.api_version), response)
