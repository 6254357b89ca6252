"""Metadata (API 3): brokers, the cluster id and every requested topic's partitions.

One broker leads every partition. Leader epochs are reported as -1 everywhere (Metadata,
ListOffsets, Fetch), so clients never start OffsetForLeaderEpoch validation, which this broker
does not serve.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.log_manager import Topic
from millpond.storage.log_manager import TopicError
from millpond.storage.log_manager import topic_name_problem

logger = logging.getLogger(__name__)

AUTHORIZED_OPERATIONS_UNKNOWN = -(2**31)


def auto_create(ctx: BrokerContext, name: str) -> Topic | None:
    """Create `name` with the broker defaults if auto.create.topics.enable; else None."""
    if not ctx.config["auto.create.topics.enable"] or topic_name_problem(name) is not None:
        return None
    try:
        return ctx.logs.create_topic(name, -1, {})
    except TopicError as error:
        logger.warning("auto-creating topic %s failed: %s", name, error)
        return ctx.logs.topics.get(name)


def broker_entry(ctx: BrokerContext) -> dict[str, Any]:
    return {
        "node_id": ctx.node_id,
        "host": ctx.advertised_host,
        "port": ctx.advertised_port,
        "rack": None,
    }


def topic_entry(ctx: BrokerContext, topic: Topic) -> dict[str, Any]:
    node = ctx.node_id
    return {
        "error_code": ErrorCode.none,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.internal,
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_UNKNOWN,
        "partitions": [
            {
                "error_code": ErrorCode.none,
                "partition_index": partition.index,
                "leader_id": node,
                "leader_epoch": -1,
                "replica_nodes": (node,),
                "isr_nodes": (node,),
                "offline_replicas": (),
            }
            for partition in topic.partitions
        ],
    }


def error_entry(name: str | None, error: ErrorCode, topic_id: Any = None) -> dict[str, Any]:
    return {
        "error_code": error,
        "name": name,
        "topic_id": topic_id or uuid.UUID(int=0),
        "is_internal": False,
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_UNKNOWN,
        "partitions": (),
    }


async def handle_metadata(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    version = header.api_version
    allow_auto_create = getattr(request, "allow_auto_topic_creation", True)
    topics: list[dict[str, Any]] = []
    requested = request.topics
    if requested is None or (version == 0 and not requested):
        topics = [topic_entry(ctx, topic) for topic in ctx.logs.topics.values()]
    else:
        for wanted in requested:
            name = wanted.name
            topic_id = getattr(wanted, "topic_id", None)
            topic: Topic | None
            if name is None and topic_id is not None:
                topic = ctx.logs.topics_by_id.get(topic_id)
                if topic is None:
                    # The response's topic name is nullable only from v12 on.
                    unnamed = None if version >= 12 else ""
                    topics.append(error_entry(unnamed, ErrorCode.unknown_topic_id, topic_id))
                    continue
            else:
                if topic_name_problem(name) is not None:
                    topics.append(error_entry(name, ErrorCode.invalid_topic_exception))
                    continue
                topic = ctx.logs.topics.get(name)
                if topic is None and allow_auto_create:
                    topic = auto_create(ctx, name)
                if topic is None:
                    topics.append(error_entry(name, ErrorCode.unknown_topic_or_partition))
                    continue
            topics.append(topic_entry(ctx, topic))
    response = {
        "throttle_time": datetime.timedelta(0),
        "brokers": [broker_entry(ctx)],
        "cluster_id": ctx.logs.cluster_id,
        "controller_id": ctx.node_id,
        "topics": topics,
        "cluster_authorized_operations": AUTHORIZED_OPERATIONS_UNKNOWN,
    }
    return build(response_type(header.api_key, header.api_version), response)
