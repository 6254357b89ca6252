"""ShareGroupDescribe (API 77): a share group's members and what each is assigned."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

# Kafka's "operations not requested" sentinel.
_NO_OPERATIONS = -(2**31)


async def handle_share_group_describe(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    groups = [_describe(ctx, group_id) for group_id in request.group_ids]
    response = {"throttle_time": datetime.timedelta(0), "groups": groups}
    return build(response_type(header.api_key, header.api_version), response)


def _describe(ctx: BrokerContext, group_id: str) -> dict[str, Any]:
    described: dict[str, Any] = {
        "error_code": ErrorCode.none,
        "error_message": None,
        "group_id": group_id,
        "group_state": "Dead",
        "group_epoch": -1,
        "assignment_epoch": -1,
        "assignor_name": "simple",
        "members": [],
        "authorized_operations": _NO_OPERATIONS,
    }
    group = ctx.share.groups.get(group_id)
    if group is None:
        described["error_code"] = ErrorCode.group_id_not_found
        kind = "a consumer group" if ctx.coordinator.has_group(group_id) else "not known"
        described["error_message"] = f"share group {group_id} is {kind}"
        return described
    names = {topic.topic_id: topic.name for topic in ctx.logs.topics.values()}
    described.update(
        group_state=group.state,
        group_epoch=group.epoch,
        assignment_epoch=group.assignment_epoch,
        members=[
            {
                "member_id": member.member_id,
                "rack_id": member.rack_id,
                "member_epoch": member.epoch,
                "client_id": member.client_id,
                "client_host": member.client_host,
                "subscribed_topic_names": list(member.subscribed),
                "assignment": {
                    "topic_partitions": [
                        {
                            "topic_id": topic_id,
                            "topic_name": names.get(topic_id, ""),
                            "partitions": list(partitions),
                        }
                        for topic_id, partitions in member.assignment.items()
                    ]
                },
            }
            for member in group.members.values()
        ],
    )
    return described
