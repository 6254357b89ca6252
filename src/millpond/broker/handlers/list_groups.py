"""ListGroups (API 16): every group, filtered by state (v4+) and type (v5+: "classic" consumer
groups, "share" groups). Before v5 a client cannot tell the types apart, so share groups are
listed only to clients that can (as Kafka does, with protocol type "share")."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.coordinator.group_state import parse_state_filter
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

GROUP_TYPE = "classic"


async def handle_list_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    states = {parse_state_filter(name) for name in getattr(request, "states_filter", ())}
    state_names = {name.lower() for name in getattr(request, "states_filter", ())}
    types = {name.lower() for name in getattr(request, "types_filter", ())}
    groups = [
        {
            "group_id": listing.group_id,
            "protocol_type": listing.protocol_type,
            "group_state": listing.state.value,
            "group_type": GROUP_TYPE,
        }
        for listing in ctx.coordinator.list_groups()
        if (not states or listing.state in states) and (not types or GROUP_TYPE in types)
    ]
    if header.api_version >= 5 and (not types or "share" in types):
        groups.extend(
            {
                "group_id": group.group_id,
                "protocol_type": "share",
                "group_state": group.state,
                "group_type": "share",
            }
            for group in ctx.share.groups.values()
            if not state_names or group.state.lower() in state_names
        )
    response = {
        "throttle_time": datetime.timedelta(0),
        "error_code": ErrorCode.none,
        "groups": groups,
    }
    return build(response_type(header.api_key, header.api_version), response)
