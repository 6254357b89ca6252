"""DescribeConfigs (API 32): a topic's effective configs, a share group's, or this broker's."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

from .topic_configs import broker_config_entries
from .topic_configs import group_config_entries
from .topic_configs import topic_config_entries

TOPIC = 2
BROKER = 4
GROUP = 32


def _describe(ctx: BrokerContext, resource: Any, synonyms: bool) -> dict[str, Any]:
    keys = resource.configuration_keys
    names = set(keys) if keys else None
    entry: dict[str, Any] = {
        "error_code": ErrorCode.none,
        "error_message": None,
        "resource_type": resource.resource_type,
        "resource_name": resource.resource_name,
        "configs": (),
    }
    if resource.resource_type == TOPIC:
        topic = ctx.logs.topics.get(resource.resource_name)
        if topic is None:
            entry["error_code"] = ErrorCode.unknown_topic_or_partition
            entry["error_message"] = f"topic {resource.resource_name!r} does not exist"
        else:
            entry["configs"] = topic_config_entries(ctx.config, topic, names, synonyms=synonyms)
    elif resource.resource_type == BROKER:
        if resource.resource_name not in ("", str(ctx.node_id)):
            entry["error_code"] = ErrorCode.invalid_request
            entry["error_message"] = f"this broker is node {ctx.node_id}"
        else:
            entry["configs"] = broker_config_entries(ctx.config, names, synonyms=synonyms)
    elif resource.resource_type == GROUP:
        group_id = resource.resource_name
        overrides = ctx.share.group_configs.get(group_id, {})
        entry["configs"] = group_config_entries(
            ctx.config, group_id, overrides, names, synonyms=synonyms
        )
    else:
        entry["error_code"] = ErrorCode.invalid_request
        entry["error_message"] = f"unsupported resource type {resource.resource_type}"
    return entry


async def handle_describe_configs(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    synonyms = bool(getattr(request, "include_synonyms", False))
    documentation = bool(getattr(request, "include_documentation", False))
    results = [_describe(ctx, resource, synonyms) for resource in request.resources]
    if not documentation:
        for result in results:
            for config in result["configs"]:
                config["documentation"] = None
    response = {"throttle_time": datetime.timedelta(0), "results": results}
    return build(response_type(header.api_key, header.api_version), response)
