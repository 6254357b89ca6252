"""Consumer lag: how far each group's committed offsets trail the end of each partition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from millpond.coordinator.offsets_topic import OffsetValue
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import TIMESTAMP_TYPE_MASK
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import iter_batches
from millpond.storage.log_manager import LogManager
from millpond.storage.log_manager import Partition


@dataclass(frozen=True, slots=True)
class GroupPartitionLag:
    """One group's position in one partition.

    lag_messages = log_end_offset - committed_offset (0 when caught up). lag_seconds is how long
    ago the oldest unconsumed record (the one at committed_offset) was written, by its
    timestamp; None when caught up or the record is no longer in the log.
    """

    group: str
    topic: str
    partition: int
    committed_offset: int
    log_end_offset: int
    lag_messages: int
    lag_seconds: float | None


def compute_lag(
    committed: Mapping[str, Mapping[tuple[str, int], OffsetValue]],
    logs: LogManager,
    now_wall: int,
) -> list[GroupPartitionLag]:
    """Every group's committed offset against each partition's end, with lag in time."""
    out = []
    for group_id, by_partition in committed.items():
        for (topic, index), value in sorted(by_partition.items()):
            partition = logs.partition(topic, index)
            if partition is None:
                continue
            log = partition.log
            end = log.log_end_offset
            lag = max(0, end - value.offset)
            seconds = None
            if lag:
                stamp = record_timestamp(partition, max(value.offset, log.log_start_offset))
                if stamp is not None:
                    seconds = max(0.0, (now_wall - stamp) / 1000)
            out.append(GroupPartitionLag(group_id, topic, index, value.offset, end, lag, seconds))
    return out


def record_timestamp(partition: Partition, offset: int) -> int | None:
    """The timestamp of the record at `offset` (or the first after it), if still in the log."""
    log = partition.log
    if not log.log_start_offset <= offset < log.log_end_offset:
        return None
    try:
        data = log.read(offset, 1)
        for header in iter_batches(data, verify_crc=False):
            if header.attributes & TIMESTAMP_TYPE_MASK:  # LogAppendTime: one stamp per batch
                return header.max_timestamp
            for record in iter_records(data, header):
                if record.offset >= offset:
                    return record.timestamp
    except (InvalidRecordError, OSError):
        return None
    return None
