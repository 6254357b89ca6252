"""JoinGroup (API 11): join or rejoin a classic group; parked until the rebalance settles."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


def _ms(value: datetime.timedelta) -> int:
    return int(value.total_seconds() * 1000)


async def handle_join_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    session_timeout_ms = _ms(request.session_timeout)
    # v0 has no rebalance timeout: Kafka uses the session timeout.
    rebalance = getattr(request, "rebalance_timeout", None)
    rebalance_timeout_ms = _ms(rebalance) if rebalance is not None else session_timeout_ms
    if rebalance_timeout_ms < 0:
        rebalance_timeout_ms = session_timeout_ms
    if request.group_id in ctx.share.groups:
        # The id belongs to a share group: a classic member cannot join it (as in Kafka).
        refusal = {
            "throttle_time": datetime.timedelta(0),
            "error_code": ErrorCode.inconsistent_group_protocol,
            "generation_id": -1,
            "protocol_type": None,
            "protocol_name": "" if header.api_version < 7 else None,
            "leader": "",
            "skip_assignment": False,
            "member_id": request.member_id,
            "members": [],
        }
        return build(response_type(header.api_key, header.api_version), refusal)
    result = await ctx.coordinator.join_group(
        request.group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        request.protocol_type,
        [(protocol.name, bytes(protocol.metadata)) for protocol in request.protocols],
        session_timeout_ms,
        rebalance_timeout_ms,
        header.client_id or "",
        header.client_host,
        require_known_member_id=header.api_version >= 4,
    )
    response = {
        "throttle_time": datetime.timedelta(0),
        "error_code": result.error,
        "generation_id": result.generation,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name or ("" if header.api_version < 7 else None),
        "leader": result.leader,
        "skip_assignment": False,
        "member_id": result.member_id,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "metadata": metadata}
            for member_id, instance_id, metadata in result.members
        ],
    }
    return build(response_type(header.api_key, header.api_version), response)
