"""CreateTopics (API 19): validate each entry, then create the valid ones unless validate_only."""

from __future__ import annotations

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
                created = ctx.logs.create_topic(name, partitions, configs)
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
