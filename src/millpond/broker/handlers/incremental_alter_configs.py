"""IncrementalAlterConfigs (API 44): SET, DELETE, APPEND, SUBTRACT on topic configs; SET and
DELETE on share-group configs (`share.*`, `errors.deadletterqueue.topic.name`).

Broker configs are static (set at start-up with --config/--set), so altering them is refused
with a message saying so.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.config import GROUP_KEYS
from millpond.config import TOPIC_KEYS
from millpond.config import ConfigError
from millpond.config import validate_group_configs
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.log_manager import TopicError

from .describe_configs import BROKER
from .describe_configs import GROUP
from .describe_configs import TOPIC

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
LIST_KEYS = {"cleanup.policy"}


def _apply(current: dict[str, str], changes: Any) -> dict[str, str]:
    """The topic's overrides after `changes`; raises TopicError on a bad operation."""
    result = dict(current)
    for change in changes:
        name, operation, value = change.name, change.config_operation, change.value
        if name not in TOPIC_KEYS:
            raise TopicError("invalid_config", f"unknown topic config {name!r}")
        if operation == SET:
            if value is None:
                raise TopicError("invalid_config", f"null value for {name}")
            result[name] = value
        elif operation == DELETE:
            result.pop(name, None)
        elif operation in (APPEND, SUBTRACT):
            if name not in LIST_KEYS:
                raise TopicError(
                    "invalid_config", f"{name} is not a list; APPEND/SUBTRACT need one"
                )
            items = [item for item in result.get(name, "").split(",") if item]
            for raw_item in (value or "").split(","):
                item = raw_item.strip()
                if operation == APPEND and item and item not in items:
                    items.append(item)
                elif operation == SUBTRACT and item in items:
                    items.remove(item)
            if items:
                result[name] = ",".join(items)
            else:
                result.pop(name, None)
        else:
            raise TopicError("invalid_request", f"unknown config operation {operation}")
    return result


def _alter(ctx: BrokerContext, resource: Any, validate_only: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "error_code": ErrorCode.none,
        "error_message": None,
        "resource_type": resource.resource_type,
        "resource_name": resource.resource_name,
    }
    if resource.resource_type == BROKER:
        entry["error_code"] = ErrorCode.invalid_request
        entry["error_message"] = "broker configs are static: set them with --config or --set"
        return entry
    if resource.resource_type != TOPIC:
        entry["error_code"] = ErrorCode.invalid_request
        entry["error_message"] = f"unsupported resource type {resource.resource_type}"
        return entry
    topic = ctx.logs.topics.get(resource.resource_name)
    try:
        if topic is None:
            raise TopicError(
                "unknown_topic_or_partition", f"topic {resource.resource_name!r} does not exist"
            )
        updated = _apply(topic.configs, resource.configs)
        ctx.logs.alter_topic_configs(topic.name, updated, validate_only=validate_only)
    except TopicError as error:
        entry["error_code"] = ErrorCode[error.code]
        entry["error_message"] = str(error)
    return entry


async def _alter_group(ctx: BrokerContext, resource: Any, validate_only: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "error_code": ErrorCode.none,
        "error_message": None,
        "resource_type": resource.resource_type,
        "resource_name": resource.resource_name,
    }
    group_id = resource.resource_name
    changes: dict[str, str | None] = {}
    try:
        if not group_id:
            raise ConfigError("the group id must not be empty")
        if ctx.coordinator.has_group(group_id):
            raise ConfigError(f"group {group_id} is a consumer group, not a share group")
        for change in resource.configs:
            if change.config_operation == SET:
                if change.value is None:
                    raise ConfigError(f"null value for {change.name}")
                changes[change.name] = change.value
            elif change.config_operation == DELETE:
                changes[change.name] = None
            else:
                raise ConfigError(f"group config {change.name} is not a list")
        merged = dict(ctx.share.group_configs.get(group_id, {}))
        merged.update({name: value for name, value in changes.items() if value is not None})
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
        unknown = [name for name in changes if name not in GROUP_KEYS]
        if unknown:
            raise ConfigError(f"unknown group config {unknown[0]!r}")
        validate_group_configs(merged)
        if not validate_only:
            await ctx.share.alter_configs(group_id, changes)
    except ConfigError as error:
        entry["error_code"] = ErrorCode.invalid_config
        entry["error_message"] = str(error)
    except OSError as error:
        entry["error_code"] = ErrorCode.kafka_storage_error
        entry["error_message"] = str(error)
    return entry


async def handle_incremental_alter_configs(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    responses = []
    for resource in request.resources:
        if resource.resource_type == GROUP:
            responses.append(await _alter_group(ctx, resource, request.validate_only))
        else:
            responses.append(_alter(ctx, resource, request.validate_only))
    response = {"throttle_time": datetime.timedelta(0), "responses": responses}
    return build(response_type(header.api_key, header.api_version), response)
