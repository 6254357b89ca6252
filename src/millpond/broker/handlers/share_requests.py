"""What ShareFetch and ShareAcknowledge share: reading their acknowledgement batches, checking
and applying them, and the per-partition answer fields."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from kio.schema.errors import ErrorCode

from millpond.broker.context import BrokerContext
from millpond.coordinator.share_partition import Acknowledgement
from millpond.coordinator.share_partition import AckType
from millpond.coordinator.share_partition import InvalidAcknowledgement
from millpond.coordinator.share_partition import validate_acknowledgements

PartitionKey = tuple[uuid.UUID, int]
AckResult = tuple[ErrorCode, str | None]


def requested_partitions(
    topics: Iterable[Any],
) -> dict[PartitionKey, list[Acknowledgement]]:
    """(topic id, partition) -> acks. librdkafka may name a topic twice (added partitions and
    acked ones in separate passes), so entries are merged: ordered by their first batch, each
    entry's batches kept in request order, so that a client sending them out of order still
    gets INVALID_REQUEST from the validation (as in Kafka)."""
    entries: dict[PartitionKey, list[list[Acknowledgement]]] = {}
    for topic in topics:
        topic_id = topic.topic_id or uuid.UUID(int=0)
        for partition in topic.partitions:
            batches = [
                Acknowledgement(b.first_offset, b.last_offset, tuple(b.acknowledge_types))
                for b in partition.acknowledgement_batches
            ]
            found = entries.setdefault((topic_id, partition.partition_index), [])
            if batches:
                found.append(batches)
    return {
        key: [ack for batches in sorted(found, key=lambda b: b[0].first_offset) for ack in batches]
        for key, found in entries.items()
    }


def partition_problem(ctx: BrokerContext, key: PartitionKey) -> AckResult | None:
    topic = ctx.share.topic_by_id(key[0])
    if topic is None:
        return ErrorCode.unknown_topic_id, f"no topic has id {key[0]}"
    if not 0 <= key[1] < len(topic.partitions):
        return ErrorCode.unknown_topic_or_partition, f"{topic.name} has no partition {key[1]}"
    return None


async def apply_acknowledgements(
    ctx: BrokerContext,
    group_id: str,
    member_id: str,
    wanted: dict[PartitionKey, list[Acknowledgement]],
    *,
    allow_renew: bool,
) -> dict[PartitionKey, AckResult]:
    """Check and apply every partition's acks concurrently; one result per acked partition."""
    max_type = AckType.RENEW if allow_renew else AckType.REJECT
    results: dict[PartitionKey, AckResult] = {}
    pending: dict[PartitionKey, Any] = {}
    for key, acks in wanted.items():
        if not acks:
            continue
        problem = partition_problem(ctx, key)
        if problem is not None:
            results[key] = problem
            continue
        try:
            validate_acknowledgements(acks, max_type)
        except InvalidAcknowledgement as error:
            results[key] = (ErrorCode.invalid_request, str(error))
            continue
        topic = ctx.share.topic_by_id(key[0])
        assert topic is not None
        pending[key] = ctx.share.acknowledge(group_id, member_id, topic, key[1], acks)
    outcomes = await asyncio.gather(*pending.values())
    results.update(zip(pending, outcomes, strict=True))
    return results


def current_leader(ctx: BrokerContext) -> dict[str, int]:
    return {"leader_id": ctx.node_id, "leader_epoch": -1}
