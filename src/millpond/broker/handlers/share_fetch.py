"""ShareFetch (API 78): acknowledge (piggy-backed), then acquire records for a share-group
member from the partitions of its share session, long-polling until something can be acquired
or MaxWaitMs passes.

Records go out as stored batches, straight from the segment reads to the transport
(share_fetch_response.py); each partition's AcquiredRecords ranges say which offsets of them
this member now holds, so the client drops the rest. The wait ends early when records are
appended, released or their locks expire, and when a delayed record comes due.
"""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from millpond.broker.context import BrokerContext
from millpond.coordinator.share_coordinator import Acquired
from millpond.coordinator.share_sessions import FINAL_EPOCH
from millpond.coordinator.share_sessions import ShareSessionError
from millpond.protocol.codec import RawResponse
from millpond.protocol.codec import RequestHeader
from millpond.protocol.share_fetch_response import ShareFetchedPartition
from millpond.protocol.share_fetch_response import encode_share_fetch_response

from .share_requests import AckResult
from .share_requests import PartitionKey
from .share_requests import apply_acknowledgements
from .share_requests import partition_problem
from .share_requests import requested_partitions

Topics = list[tuple[uuid.UUID, list[ShareFetchedPartition]]]


async def handle_share_fetch(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> RawResponse:
    share = ctx.share
    group_id = request.group_id or ""
    member_id = request.member_id or ""
    epoch = request.share_session_epoch
    lock_ms = share.settings(group_id).lock_duration_ms if group_id else 0

    def answer(error: ErrorCode, message: str | None, responses: Topics) -> RawResponse:
        pieces = encode_share_fetch_response(
            header.correlation_id,
            error_code=error,
            error_message=message,
            acquisition_lock_timeout_ms=lock_ms,
            topics=responses,
        )
        return RawResponse(pieces)

    if not group_id or not member_id:
        return answer(ErrorCode.invalid_request, "group id and member id are required", [])
    wanted = requested_partitions(request.topics)
    try:
        if epoch == 0:
            if any(wanted.values()):
                message = "acknowledgements need an open share session"
                return answer(ErrorCode.invalid_request, message, [])
            session = share.sessions.open(group_id, member_id, header.connection_id)
        else:
            session = share.sessions.resume(group_id, member_id, epoch)
    except ShareSessionError as error:
        return answer(error.error, str(error), [])
    if epoch == FINAL_EPOCH:
        share.sessions.close(group_id, member_id)
    else:
        if epoch != 0:  # a new session already expects epoch 1
            session.advance()
        for key in wanted:
            session.partitions.setdefault(key, None)
        for forgotten in request.forgotten_topics_data:
            for index in forgotten.partitions:
                session.partitions.pop((forgotten.topic_id, index), None)

    acks = await apply_acknowledgements(ctx, group_id, member_id, wanted, allow_renew=False)
    if epoch == FINAL_EPOCH:
        await share.release_member(group_id, member_id, count_delivery=False)
        return answer(ErrorCode.none, None, _responses(ctx, {}, {}, acks, set()))

    errors: dict[PartitionKey, AckResult] = {}
    acquired: dict[PartitionKey, Acquired] = {}
    partitions = list(session.partitions)
    if partitions:
        # Start at a different partition each time, so one busy partition cannot starve others.
        turn = session.next_epoch % len(partitions)
        partitions = partitions[turn:] + partitions[:turn]
    max_wait_ms = max(0, int(request.max_wait.total_seconds() * 1000))
    deadline = ctx.clock.monotonic_ms() + max_wait_ms
    while True:
        total_records = total_bytes = 0
        for key in partitions:
            if key in errors:
                continue
            problem = partition_problem(ctx, key)
            if problem is not None:
                errors[key] = problem
                continue
            if total_records >= request.max_records or total_bytes >= request.max_bytes:
                break
            topic = share.topic_by_id(key[0])
            assert topic is not None
            try:
                state = await share.share_partition(group_id, topic, key[1])
                got = share.acquire(
                    group_id,
                    member_id,
                    topic,
                    key[1],
                    state,
                    request.max_records - total_records,
                    max(request.max_bytes - total_bytes, 1),
                )
            except OSError as error:
                errors[key] = (ErrorCode.kafka_storage_error, str(error))
                continue
            if got.ranges:
                acquired[key] = got
                total_records += sum(r.last_offset - r.first_offset + 1 for r in got.ranges)
                total_bytes += got.size
        now = ctx.clock.monotonic_ms()
        if acquired or errors or now >= deadline or not partitions:
            break
        timeout_ms = deadline - now
        due = share.next_delivery_wall_ms(group_id, partitions)
        if due is not None:
            timeout_ms = min(timeout_ms, max(due - ctx.clock.wall_ms(), 1))
        names = []
        for topic_id, index in partitions:
            topic = share.topic_by_id(topic_id)
            if topic is not None:
                names.append((topic.name, index))
        await ctx.appended.wait_any(names, timeout_ms / 1000)
    shown = set(wanted) if epoch != 0 else set(partitions)
    return answer(ErrorCode.none, None, _responses(ctx, acquired, errors, acks, shown))


def _responses(
    ctx: BrokerContext,
    acquired: dict[PartitionKey, Acquired],
    errors: dict[PartitionKey, AckResult],
    acks: dict[PartitionKey, AckResult],
    shown: set[PartitionKey],
) -> Topics:
    """A partition appears when it has records, an error, an ack result, or was just named."""
    keys = list(dict.fromkeys([*acquired, *errors, *acks, *sorted(shown, key=str)]))
    by_topic: dict[uuid.UUID, list[ShareFetchedPartition]] = {}
    for key in keys:
        error, message = errors.get(key, (ErrorCode.none, None))
        ack_error, ack_message = acks.get(key, (ErrorCode.none, None))
        got = acquired.get(key)
        by_topic.setdefault(key[0], []).append(
            ShareFetchedPartition(
                partition_index=key[1],
                error_code=error,
                error_message=message,
                acknowledge_error_code=ack_error,
                acknowledge_error_message=ack_message,
                leader_id=ctx.node_id,
                leader_epoch=-1,
                records=got.records if got else (),
                acquired=[(r.first_offset, r.last_offset, r.delivery_count) for r in got.ranges]
                if got
                else [],
            )
        )
    return list(by_topic.items())
