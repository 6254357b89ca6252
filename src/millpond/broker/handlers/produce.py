"""Produce (API 0): validate each partition's record batch, append it, answer per partition.

Log-append times are answered as epoch milliseconds (-1 for CreateTime topics).

The synchronous part (validation, sequence checks, the append itself) runs before the first
await, so requests on one connection append in the order they arrived even though their
responses may wait for the same group-commit round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from millpond.broker.context import BrokerContext
from millpond.broker.group_commit import StorageError
from millpond.protocol.codec import CloseConnection
from millpond.protocol.codec import RawResponse
from millpond.protocol.codec import RequestHeader
from millpond.protocol.produce_response import ProducedPartition
from millpond.protocol.produce_response import encode_produce_response
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import iter_batches
from millpond.protocol.records import set_log_append_time
from millpond.protocol.records import set_partition_leader_epoch
from millpond.storage.cleaner import batch_has_null_key
from millpond.storage.log import Log
from millpond.storage.log_manager import Partition
from millpond.storage.log_manager import topic_name_problem
from millpond.storage.producer_state import Duplicate
from millpond.storage.producer_state import Reject

from .metadata import auto_create

NO_LEADER_EPOCH = -1


@dataclass(slots=True)
class PartitionResult:
    error: ErrorCode
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    message: str | None = None

    def encoded(self, index: int) -> ProducedPartition:
        return ProducedPartition(
            index,
            self.error,
            self.base_offset,
            self.log_append_time,
            self.log_start_offset,
            self.message,
        )


def _schema_problem(
    ctx: BrokerContext, partition: Partition, buffer: bytearray | memoryview, batch: BatchHeader
) -> str | None:
    if ctx.schemas is None:
        return "schema validation is on for this topic but the schema registry is not running"
    config = partition.topic.config
    try:
        return ctx.schemas.check_batch(
            partition.topic.name,
            buffer,
            batch,
            keys=config.key_schema_validation,
            values=config.value_schema_validation,
        )
    except InvalidRecordError as error:
        return f"records do not decode: {error}"


def append_to_partition(
    ctx: BrokerContext, partition: Partition, records: bytes | memoryview | None
) -> PartitionResult:
    """Validate and append one partition's records. Never raises for bad input."""
    log = partition.log
    if not records:
        return PartitionResult(ErrorCode.invalid_record, message="no record batch")
    max_bytes = partition.topic.config.max_message_bytes
    if len(records) > max_bytes:
        return PartitionResult(
            ErrorCode.message_too_large,
            message=f"batch of {len(records)} bytes exceeds max.message.bytes={max_bytes}",
        )
    # The decoder hands over a writable view into the request frame: patched in place, never
    # copied (anything else, e.g. a test's bytes, is copied once).
    buffer = (
        records if isinstance(records, memoryview) and not records.readonly else bytearray(records)
    )
    try:
        batches = list(iter_batches(buffer))
    except InvalidRecordError as error:
        return PartitionResult(ErrorCode.corrupt_message, message=str(error))
    if len(batches) != 1:
        return PartitionResult(
            ErrorCode.invalid_record,
            message="produce requests must carry exactly one record batch per partition",
        )
    batch = batches[0]
    if batch.records_count != batch.last_offset_delta + 1:
        return PartitionResult(
            ErrorCode.corrupt_message, message="record count disagrees with offsets"
        )
    if batch.is_control:
        return PartitionResult(
            ErrorCode.invalid_record, message="clients may not send control batches"
        )
    if batch.is_transactional:
        return PartitionResult(
            ErrorCode.invalid_txn_state, message="transactions are not supported by this broker"
        )
    if partition.topic.config.compacted:
        try:
            null_key = batch_has_null_key(buffer, batch)
        except InvalidRecordError as error:
            return PartitionResult(ErrorCode.corrupt_message, message=str(error))
        if null_key:
            return PartitionResult(
                ErrorCode.invalid_record,
                message="Compacted topic cannot accept message without key",
            )
    config = partition.topic.config
    if config.key_schema_validation or config.value_schema_validation:
        problem = _schema_problem(ctx, partition, buffer, batch)
        if problem is not None:
            return PartitionResult(ErrorCode.invalid_record, message=problem)
    check = partition.producer_state.check(batch)
    if isinstance(check, Reject):
        return PartitionResult(check.error_code, log_start_offset=log.log_start_offset)
    if isinstance(check, Duplicate):
        return PartitionResult(
            ErrorCode.none,
            base_offset=check.base_offset,
            log_append_time=check.timestamp if partition.topic.config.log_append_time else -1,
            log_start_offset=log.log_start_offset,
        )
    now = ctx.clock.wall_ms()
    # Leader epochs are -1 everywhere this broker speaks (Metadata, Fetch, ListOffsets), so
    # stored batches say -1 too and consumers never commit an epoch they would then want to
    # validate with OffsetForLeaderEpoch, which is not served.
    set_partition_leader_epoch(buffer, batch.position, NO_LEADER_EPOCH)
    if partition.topic.config.log_append_time:
        set_log_append_time(buffer, batch, now)
        batch = next(iter_batches(buffer, verify_crc=False))
    try:
        ctx.group_commit.check_writable(log)
    except StorageError as error:
        return PartitionResult(ErrorCode.kafka_storage_error, message=str(error))
    active_base = log.active_segment.base_offset
    try:
        result = log.append(buffer, [batch])
    except OSError as error:
        return PartitionResult(ErrorCode.kafka_storage_error, message=f"append failed: {error}")
    if log.active_segment.base_offset != active_base:
        # As Kafka does on roll: a snapshot at the new segment bounds the replay after a crash
        # to the newest segment. It describes the state before this batch.
        partition.producer_state.take_snapshot(result.base_offset)
    appended = next(iter_batches(memoryview(buffer)[: batch.size], verify_crc=False))
    partition.producer_state.update(appended, now)
    ctx.appended.notify((partition.topic.name, partition.index))
    return PartitionResult(
        ErrorCode.none,
        base_offset=result.base_offset,
        log_append_time=now if partition.topic.config.log_append_time else -1,
        log_start_offset=log.log_start_offset,
    )


async def handle_produce(
    ctx: BrokerContext, header: RequestHeader, request: Any
) -> RawResponse | None:
    acks = request.acks
    topics_out: list[tuple[str, list[tuple[int, PartitionResult]]]] = []
    durable: list[tuple[Log, PartitionResult]] = []
    for topic_data in request.topic_data:
        name = topic_data.name
        partitions_out: list[tuple[int, PartitionResult]] = []
        topic = ctx.logs.topics.get(name)
        topic_error: ErrorCode | None = None
        if acks not in (-1, 0, 1):
            topic_error = ErrorCode.invalid_required_acks
        elif topic_name_problem(name) is not None or (topic is not None and topic.internal):
            # Internal topics are written by the broker only, as in Kafka.
            topic_error = ErrorCode.invalid_topic_exception
        elif topic is None:
            topic = auto_create(ctx, name)
            if topic is None:
                topic_error = ErrorCode.unknown_topic_or_partition
        for partition_data in topic_data.partition_data:
            index = partition_data.index
            if topic_error is not None:
                partitions_out.append((index, PartitionResult(topic_error)))
                continue
            partition = ctx.logs.partition(name, index)
            if partition is None:
                partitions_out.append(
                    (index, PartitionResult(ErrorCode.unknown_topic_or_partition))
                )
                continue
            result = append_to_partition(ctx, partition, partition_data.records)
            partitions_out.append((index, result))
            if acks == -1 and result.error == ErrorCode.none:
                durable.append((partition.log, result))
        topics_out.append((name, partitions_out))
    if acks == -1 and durable:
        try:
            await ctx.group_commit.sync(log for log, _ in durable)
        except StorageError as error:
            for _log, result in durable:
                result.error = ErrorCode.kafka_storage_error
                result.message = f"fsync failed: {error}"
                result.base_offset = -1
    if acks == 0:
        failed = [
            (name, index, result.error)
            for name, partitions in topics_out
            for index, result in partitions
            if result.error != ErrorCode.none
        ]
        if failed:
            name, index, code = failed[0]
            raise CloseConnection(f"acks=0 produce to {name}-{index} failed with {code.name}")
        return None
    encoded = [
        (name, [result.encoded(index) for index, result in partitions])
        for name, partitions in topics_out
    ]
    return RawResponse(
        [encode_produce_response(header.api_version, header.correlation_id, encoded)]
    )
