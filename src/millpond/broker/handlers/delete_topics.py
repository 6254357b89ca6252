"""DeleteTopics (API 20): by name (v1-5) or by name or topic id (v6)."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type
from millpond.storage.log_manager import TopicError

NO_TOPIC_ID = uuid.UUID(int=0)


def _delete(ctx: BrokerContext, name: str | None, topic_id: uuid.UUID | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "topic_id": topic_id or NO_TOPIC_ID,
        "error_code": ErrorCode.none,
        "error_message": None,
    }
    if name is None:
        topic = ctx.logs.topics_by_id.get(topic_id) if topic_id else None
        if topic is None:
            entry["error_code"] = ErrorCode.unknown_topic_id
            return entry
        name = topic.name
        entry["name"] = name
    try:
        deleted = ctx.logs.delete_topic(name)
    except TopicError as error:
        entry["error_code"] = ErrorCode[error.code]
        entry["error_message"] = str(error)
        return entry
    entry["topic_id"] = deleted.topic_id
    return entry


async def handle_delete_topics(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    if header.api_version >= 6:
        wanted = [
            (topic.name, None if topic.topic_id == NO_TOPIC_ID else topic.topic_id)
            for topic in request.topics
        ]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = [_delete(ctx, name, topic_id) for name, topic_id in wanted]
    response = {"throttle_time": datetime.timedelta(0), "responses": results}
    return build(response_type(header.api_key, header.api_version), response)
