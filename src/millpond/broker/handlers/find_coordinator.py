"""FindCoordinator (API 10): this broker coordinates every group.

v0-3 carry one key; v4 (KIP-699) a list, answered one coordinator per key. Transactions are not
offered, so a transaction key is refused.
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

GROUP_KEY = 0


def _coordinator(ctx: BrokerContext, key: str, key_type: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": key,
        "node_id": ctx.node_id,
        "host": ctx.advertised_host,
        "port": ctx.advertised_port,
        "error_code": ErrorCode.none,
        "error_message": None,
    }
    if key_type != GROUP_KEY:
        entry.update(
            node_id=-1,
            host="",
            port=-1,
            error_code=ErrorCode.invalid_request,
            error_message="this broker coordinates consumer groups only (no transactions)",
        )
    elif not key:
        entry.update(
            node_id=-1,
            host="",
            port=-1,
            error_code=ErrorCode.invalid_group_id,
            error_message="the group id is empty",
        )
    return entry


async def handle_find_coordinator(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    key_type = getattr(request, "key_type", GROUP_KEY)
    if header.api_version >= 4:
        response: dict[str, Any] = {
            "throttle_time": datetime.timedelta(0),
            "coordinators": [_coordinator(ctx, key, key_type) for key in request.coordinator_keys],
        }
    else:
        response = _coordinator(ctx, request.key, key_type)
        response["throttle_time"] = datetime.timedelta(0)
    return build(response_type(header.api_key, header.api_version), response)
