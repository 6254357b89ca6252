"""LeaveGroup (API 13): v0-2 one member, v3+ a batch (KIP-345) with one error each."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_leave_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    if header.api_version >= 3:
        leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        leaving = [(request.member_id, None)]
    errors = ctx.coordinator.leave_group(request.group_id, leaving)
    if header.api_version >= 3:
        response: dict[str, Any] = {
            "throttle_time": datetime.timedelta(0),
            "error_code": ErrorCode.none,
            "members": [
                {"member_id": member_id, "group_instance_id": instance_id, "error_code": error}
                for (member_id, instance_id), error in zip(leaving, errors, strict=True)
            ],
        }
    else:
        response = {"throttle_time": datetime.timedelta(0), "error_code": errors[0]}
    return build(response_type(header.api_key, header.api_version), response)
