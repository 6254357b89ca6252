"""ShareAcknowledge (API 79): acknowledge records outside a fetch. Needs an open share session
(epoch > 0, which it consumes like a fetch), or closes it (epoch -1) after applying the acks."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.coordinator.share_sessions import FINAL_EPOCH
from millpond.coordinator.share_sessions import ShareSessionError
from millpond.protocol.build import build
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

from .share_requests import apply_acknowledgements
from .share_requests import current_leader
from .share_requests import requested_partitions


async def handle_share_acknowledge(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> Entity:
    version = header.api_version
    group_id = request.group_id or ""
    member_id = request.member_id or ""
    epoch = request.share_session_epoch
    lock_ms = ctx.share.settings(group_id).lock_duration_ms if group_id else 0

    def answer(error: ErrorCode, message: str | None, responses: list[Any]) -> Entity:
        response: dict[str, Any] = {
            "throttle_time": datetime.timedelta(0),
            "error_code": error,
            "error_message": message,
            "responses": responses,
            "node_endpoints": [],
        }
        if version >= 2:
            response["acquisition_lock_timeout"] = datetime.timedelta(milliseconds=lock_ms)
        return build(response_type(header.api_key, version), response)

    if not group_id or not member_id:
        return answer(ErrorCode.invalid_request, "group id and member id are required", [])
    if epoch == 0:
        reason = "ShareAcknowledge needs a session opened by ShareFetch"
        return answer(ErrorCode.invalid_share_session_epoch, reason, [])
    try:
        session = ctx.share.sessions.resume(group_id, member_id, epoch)
    except ShareSessionError as error:
        return answer(error.error, str(error), [])
    if epoch == FINAL_EPOCH:
        ctx.share.sessions.close(group_id, member_id)
    else:
        session.advance()
    wanted = requested_partitions(request.topics)
    for key in wanted:
        if epoch != FINAL_EPOCH:
            session.partitions.setdefault(key, None)
    results = await apply_acknowledgements(
        ctx, group_id, member_id, wanted, allow_renew=version >= 2
    )
    if epoch == FINAL_EPOCH:
        await ctx.share.release_member(group_id, member_id, count_delivery=False)
    by_topic: dict[Any, list[Any]] = {}
    for (topic_id, index), (code, message) in results.items():
        by_topic.setdefault(topic_id, []).append(
            {
                "partition_index": index,
                "error_code": code,
                "error_message": message,
                "current_leader": current_leader(ctx),
            }
        )
    responses = [{"topic_id": t, "partitions": p} for t, p in by_topic.items()]
    return answer(ErrorCode.none, None, responses)
