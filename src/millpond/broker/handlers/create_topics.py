"""CreateTopics (API 19): validate each entry, then create the valid ones unless validate_only."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections import Counter
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.log_manager import Topic
from millpond.storage.log_manager import TopicError

from .topic_configs import topic_config_entries


def _result(name: str, error: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "topic_id": uuid.UUID(int=0),
        "error_code": error,
        "error_message": message,
        "topic_config_error_code": 0,
        "num_partitions": -1,
        "replication_factor": -1,
        "configs": (),
    }


# Up to this many partitions are opened on the event loop (about 0.4 ms each); a larger topic's
# are opened in a worker thread, so 10,000 partitions do not stall every client for seconds.
PARTITIONS_OPENED_INLINE = 64


async def create_topic(
    ctx: BrokerContext, name: str, partitions: int, configs: dict[str, str]
) -> Topic:
    """Create the topic; raises TopicError."""
    topic, count = ctx.logs.reserve_topic(name, partitions, configs)
    if count <= PARTITIONS_OPENED_INLINE:
        with contextlib.suppress(OSError):  # finish_topic undoes it and says why
            ctx.logs.open_new_partitions(topic, count)
        ctx.logs.finish_topic(topic, count)
        return topic

    async def open_in_thread() -> None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(ctx.logs.open_new_partitions, topic, count)
        ctx.logs.finish_topic(topic, count)

    # Shielded: a client that hangs up mid-way must not leave the thread's work half-adopted.
    await asyncio.shield(asyncio.ensure_future(open_in_thread()))
    return topic


async def handle_create_topics(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    counts = Counter(topic.name for topic in request.topics)
    results = []
    for topic in request.topics:
        name = topic.name
        if counts[name] > 1:
            results.append(_result(name, ErrorCode.invalid_request, "topic named more than once"))
            continue
        configs = {config.name: config.value for config in topic.configs}
        partitions = topic.num_partitions
        replication = topic.replication_factor
        if topic.assignments:
            if partitions != -1 or replication != -1:
                results.append(
                    _result(
                        name,
                        ErrorCode.invalid_request,
                        "give either assignments or partitions and replication factor",
                    )
                )
                continue
            if any(tuple(a.broker_ids) != (ctx.node_id,) for a in topic.assignments):
                results.append(
                    _result(
                        name,
                        ErrorCode.invalid_replica_assignment,
                        f"every replica must be on broker {ctx.node_id}, the only one",
                    )
                )
                continue
            partitions = len(topic.assignments)
        try:
            if None in configs.values():
                raise TopicError("invalid_config", "a topic config value is null")
            ctx.logs.check_new_topic(name, partitions, replication, configs)
            if request.validate_only:
                created = None
            else:
                created = await create_topic(ctx, name, partitions, configs)
        except TopicError as error:
            results.append(_result(name, ErrorCode[error.code], str(error)))
            continue
        entry = _result(name, ErrorCode.none)
        entry["num_partitions"] = partitions if partitions != -1 else ctx.config["num.partitions"]
        entry["replication_factor"] = 1
        if created is not None:
            entry["topic_id"] = created.topic_id
            entry["configs"] = topic_config_entries(ctx.config, created, None)
        results.append(entry)
    response = {"throttle_time": datetime.timedelta(0), "topics": results}
    return build(response_type(header.api_key, header.api_version), response)
