"""DeleteGroups (API 42): remove empty groups and their committed offsets."""

from __future__ import annotations

import datetime
from typing import Any

from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_delete_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    results = await ctx.coordinator.delete_groups(list(request.groups_names))
    response = {
        "throttle_time": datetime.timedelta(0),
        "results": [{"group_id": group, "error_code": error} for group, error in results.items()],
    }
    return build(response_type(header.api_key, header.api_version), response)
