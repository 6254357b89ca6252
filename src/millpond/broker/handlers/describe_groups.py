"""DescribeGroups (API 15): state, protocol and members of each group (Dead if unknown)."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

from .metadata import AUTHORIZED_OPERATIONS_UNKNOWN


async def handle_describe_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    groups = []
    for group_id in request.groups:
        description = ctx.coordinator.describe_group(group_id)
        groups.append(
            {
                "error_code": ErrorCode.none,
                "group_id": group_id,
                "group_state": description.state.value,
                "protocol_type": description.protocol_type,
                "protocol_data": description.protocol_data,
                "authorized_operations": AUTHORIZED_OPERATIONS_UNKNOWN,
                "members": [
                    {
                        "member_id": member.member_id,
                        "group_instance_id": member.group_instance_id,
                        "client_id": member.client_id,
                        "client_host": member.client_host,
                        "member_metadata": member.metadata,
                        "member_assignment": member.assignment,
                    }
                    for member in description.members
                ],
            }
        )
    response = {"throttle_time": datetime.timedelta(0), "groups": groups}
    return build(response_type(header.api_key, header.api_version), response)
