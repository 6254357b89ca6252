"""Heartbeat (API 12): keeps a member's session alive; REBALANCE_IN_PROGRESS asks it to rejoin."""

from __future__ import annotations

import datetime
from typing import Any

from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_heartbeat(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    error = ctx.coordinator.heartbeat(
        request.group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        request.generation_id,
    )
    response = {"throttle_time": datetime.timedelta(0), "error_code": error}
    return build(response_type(header.api_key, header.api_version), response)
