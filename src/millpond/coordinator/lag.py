"""Consumer lag: how far each group's committed offsets trail the end of each partition."""

from __future__ import annotations

from dataclasses import dataclass


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
