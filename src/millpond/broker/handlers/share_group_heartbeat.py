"""ShareGroupHeartbeat (API 76): join, stay in and leave a share group; the broker assigns."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_share_group_heartbeat(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    topics = request.subscribed_topic_names
    result, interval_ms = ctx.share.heartbeat(
        request.group_id,
        request.member_id,
        request.member_epoch,
        request.rack_id,
        None if topics is None else list(topics),
        header.client_id or "",
        header.client_host,
    )
    assignment = None
    if result.assignment is not None:
        assignment = {
            "topic_partitions": [
                {"topic_id": topic_id, "partitions": list(partitions)}
                for topic_id, partitions in result.assignment.items()
            ]
        }
    ok = result.error == ErrorCode.none
    response = {
        "throttle_time": datetime.timedelta(0),
        "error_code": result.error,
        "error_message": result.message,
        "member_id": request.member_id if ok else None,
        "member_epoch": result.member_epoch,
        "heartbeat_interval": datetime.timedelta(milliseconds=interval_ms),
        "assignment": assignment,
    }
    return build(response_type(header.api_key, header.api_version), response)
