"""DeleteGroups (API 42): remove empty groups and their committed offsets, or an empty share
group and its state."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_delete_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    names = list(request.groups_names)
    shares = [name for name in names if name in ctx.share.groups]
    results = await ctx.coordinator.delete_groups([n for n in names if n not in shares])
    for group_id in shares:
        if ctx.share.groups[group_id].members:
            results[group_id] = ErrorCode.non_empty_group
            continue
        try:
            await ctx.share.delete_group(group_id)
        except OSError:
            results[group_id] = ErrorCode.kafka_storage_error
        else:
            results[group_id] = ErrorCode.none
    response = {
        "throttle_time": datetime.timedelta(0),
        "results": [{"group_id": group, "error_code": error} for group, error in results.items()],
    }
    return build(response_type(header.api_key, header.api_version), response)
