"""DescribeShareGroupOffsets (API 90), AlterShareGroupOffsets (API 91) and
DeleteShareGroupOffsets (API 92): where a share group stands on each partition (its start
offset: everything before it is done) and resetting or forgetting that, as kafka-share-groups
does. Resets need the group to have no members, as in Kafka."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.coordinator.share_coordinator import lag_of
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type


async def handle_describe_share_group_offsets(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    groups = []
    for wanted in request.groups:
        group_id = wanted.group_id
        if group_id not in ctx.share.groups:
            groups.append(
                {
                    "group_id": group_id,
                    "topics": [],
                    "error_code": ErrorCode.group_id_not_found,
                    "error_message": f"share group {group_id} is not known",
                }
            )
            continue
        states = {(t.name, i): p for t, i, p in ctx.share.partitions_of(group_id)}
        asked: dict[str, list[int]]
        if wanted.topics is None:
            asked = {}
            for name, index in states:
                asked.setdefault(name, []).append(index)
        else:
            asked = {t.topic_name: list(t.partitions) for t in wanted.topics}
        topics = []
        for name, indexes in asked.items():
            topic = ctx.logs.topics.get(name)
            partitions = []
            for index in indexes:
                entry: dict[str, Any] = {
                    "partition_index": index,
                    "start_offset": -1,
                    "leader_epoch": -1,
                    "lag": -1,
                    "error_code": ErrorCode.none,
                    "error_message": None,
                }
                if topic is None or not 0 <= index < len(topic.partitions):
                    entry["error_code"] = ErrorCode.unknown_topic_or_partition
                    entry["error_message"] = f"{name} has no partition {index}"
                elif (name, index) in states:
                    state = states[(name, index)]
                    entry["start_offset"] = state.start_offset
                    entry["lag"] = lag_of(state, topic.partitions[index].log.log_end_offset)
                partitions.append(entry)
            topics.append(
                {
                    "topic_name": name,
                    "topic_id": topic.topic_id if topic is not None else None,
                    "partitions": partitions,
                }
            )
        groups.append(
            {
                "group_id": group_id,
                "topics": topics,
                "error_code": ErrorCode.none,
                "error_message": None,
            }
        )
    response = {"throttle_time": datetime.timedelta(0), "groups": groups}
    return build(response_type(header.api_key, header.api_version), response)


def _group_problem(ctx: BrokerContext, group_id: str) -> tuple[ErrorCode, str] | None:
    group = ctx.share.groups.get(group_id)
    if group is None:
        return ErrorCode.group_id_not_found, f"share group {group_id} is not known"
    if group.members:
        return ErrorCode.non_empty_group, f"share group {group_id} still has members"
    return None


def _answer(
    header: RequestHeader, problem: tuple[ErrorCode, str] | None, responses: list[Any]
) -> Entity:
    """Alter's and Delete's answer: the group-level problem, if any, and per-topic results."""
    response = {
        "throttle_time": datetime.timedelta(0),
        "error_code": problem[0] if problem else ErrorCode.none,
        "error_message": problem[1] if problem else None,
        "responses": responses,
    }
    return build(response_type(header.api_key, header.api_version), response)


async def handle_alter_share_group_offsets(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    problem = _group_problem(ctx, request.group_id)
    responses = []
    for wanted in request.topics:
        topic = ctx.logs.topics.get(wanted.topic_name)
        partitions = []
        starts: dict[int, int] = {}
        for p in wanted.partitions:
            error, message = ErrorCode.none, None
            if problem is not None:
                error, message = problem
            elif topic is None or not 0 <= p.partition_index < len(topic.partitions):
                error = ErrorCode.unknown_topic_or_partition
                message = f"{wanted.topic_name} has no partition {p.partition_index}"
            elif p.start_offset < -2:
                error, message = ErrorCode.invalid_request, "start offset must be >= -2"
            else:
                starts[p.partition_index] = p.start_offset
            entry = {"partition_index": p.partition_index, "error_code": error}
            partitions.append({**entry, "error_message": message})
        if topic is not None and starts:
            try:
                await ctx.share.reset_offsets(request.group_id, topic, starts)
            except OSError as error:
                for entry in partitions:
                    if entry["error_code"] == ErrorCode.none:
                        entry["error_code"] = ErrorCode.kafka_storage_error
                        entry["error_message"] = str(error)
        responses.append(
            {
                "topic_name": wanted.topic_name,
                "topic_id": topic.topic_id if topic is not None else None,
                "partitions": partitions,
            }
        )
    return _answer(header, problem, responses)


async def handle_delete_share_group_offsets(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    problem = _group_problem(ctx, request.group_id)
    responses = []
    if problem is None:
        for wanted in request.topics:
            topic = ctx.logs.topics.get(wanted.topic_name)
            error, message = ErrorCode.none, None
            if topic is None:
                error = ErrorCode.unknown_topic_or_partition
                message = f"no topic {wanted.topic_name}"
            else:
                try:
                    await ctx.share.delete_offsets(request.group_id, topic)
                except OSError as failure:
                    error, message = ErrorCode.kafka_storage_error, str(failure)
            responses.append(
                {
                    "topic_name": wanted.topic_name,
                    "topic_id": topic.topic_id if topic is not None else None,
                    "error_code": error,
                    "error_message": message,
                }
            )
    return _answer(header, problem, responses)
