"""SyncGroup (API 14): the leader hands out assignments; everyone receives theirs."""

from __future__ import annotations

import datetime
from typing import Any

from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_sync_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    result = await ctx.coordinator.sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        getattr(request, "protocol_type", None),
        getattr(request, "protocol_name", None),
        {entry.member_id: bytes(entry.assignment) for entry in request.assignments},
    )
    response = {
        "throttle_time": datetime.timedelta(0),
        "error_code": result.error,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }
    return build(response_type(header.api_key, header.api_version), response)
