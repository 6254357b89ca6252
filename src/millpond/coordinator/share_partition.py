"""One share group's view of one partition (KIP-932's SharePartition): which records are handed
out, to whom, until when, and how often. Pure: no I/O, times are passed in.

    log offsets   ... | start_offset (SPSO) ................ end_offset | untracked ...
                        tracked: one InFlight per offset, gaps included
    state         AVAILABLE -acquire-> ACQUIRED -accept-> ACKNOWLEDGED
                                          |  -reject/gap-> ARCHIVED
                                          +-release/lock expiry-> AVAILABLE,
                                                or ARCHIVED once delivery_count >= limit

Every offset below start_offset is done (acknowledged or archived); offsets from end_offset on
have never been handed out and are implicitly AVAILABLE with no deliveries. When the leading
tracked records reach a terminal state, start_offset moves past them and they are forgotten.
New offsets are taken into the window only while it holds fewer than `max_in_flight`; records
already inside it are always redelivered.

A record is archived with a `DeadLetter` when a client rejects it or its deliveries run out, so
the caller can copy it to the group's dead-letter topic before the new state is made durable.
`deliver_after` (wall-clock ms) holds a delayed record back from acquisition until its time.

Locks belong to the member that acquired the record (not to a share session), as in Kafka.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class RecordState(IntEnum):
    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AckType(IntEnum):
    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


class Disposition:
    """Why a record was dead-lettered: the `_dlq.errors.disposition` header values."""

    MAX_DELIVERY_ATTEMPTS_REACHED = "MAX_DELIVERY_ATTEMPTS_REACHED"
    CLIENT_REJECTED = "CLIENT_REJECTED"


TERMINAL = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
# A restored record's delivery time is not stored; it is read again when it is next offered.
DELIVERY_TIME_UNKNOWN = -1


@dataclass(slots=True)
class InFlight:
    state: RecordState
    delivery_count: int = 0
    owner: str | None = None
    lock_deadline_ms: int = 0  # monotonic
    deliver_after_ms: int = 0  # wall clock


@dataclass(frozen=True, slots=True)
class DeadLetter:
    offset: int
    disposition: str
    delivery_count: int


@dataclass(frozen=True, slots=True)
class AcquiredRange:
    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(frozen=True, slots=True)
class StateBatch:
    """A run of offsets with one persisted state and delivery count."""

    first_offset: int
    last_offset: int
    state: RecordState
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    first_offset: int
    last_offset: int
    # One type for the whole range, or one per offset.
    types: tuple[int, ...]


class InvalidAcknowledgement(Exception):
    """Acks that break the request's rules (INVALID_REQUEST)."""


class InvalidRecordState(Exception):
    """An ack for a record this member does not hold (INVALID_RECORD_STATE)."""


@dataclass(frozen=True, slots=True)
class SharePartitionLimits:
    lock_duration_ms: int
    delivery_count_limit: int
    max_in_flight: int


def validate_acknowledgements(acks: Iterable[Acknowledgement], max_type: int) -> None:
    """Kafka's request checks: ranges ascending and disjoint, types per range or per offset."""
    previous_last = -1
    for ack in acks:
        if ack.first_offset < 0 or ack.first_offset > ack.last_offset:
            raise InvalidAcknowledgement(
                f"acknowledgement range {ack.first_offset}-{ack.last_offset} is not a range"
            )
        if ack.first_offset <= previous_last:
            raise InvalidAcknowledgement("acknowledgement ranges overlap or are not in order")
        size = ack.last_offset - ack.first_offset + 1
        if len(ack.types) not in (1, size):
            raise InvalidAcknowledgement(f"{len(ack.types)} acknowledge types for {size} offsets")
        for ack_type in ack.types:
            if not 0 <= ack_type <= max_type:
                raise InvalidAcknowledgement(f"unknown acknowledge type {ack_type}")
        previous_last = ack.last_offset


def ranges_of(taken: list[tuple[int, int]]) -> list[AcquiredRange]:
    """(offset, delivery count) pairs, ascending, as ranges of consecutive offsets that share
    a delivery count."""
    ranges: list[AcquiredRange] = []
    for offset, count in taken:
        last = ranges[-1] if ranges else None
        if last is not None and last.last_offset == offset - 1 and last.delivery_count == count:
            ranges[-1] = AcquiredRange(last.first_offset, offset, count)
        else:
            ranges.append(AcquiredRange(offset, offset, count))
    return ranges


class SharePartition:
    def __init__(self, start_offset: int, limits: SharePartitionLimits) -> None:
        self.start_offset = start_offset
        self.end_offset = start_offset
        self.limits = limits
        self.records: dict[int, InFlight] = {}
        # (deadline, first, last) for every span of locks handed out; records acknowledged or
        # renewed since are skipped when it expires.
        self._locks: list[tuple[int, int, int]] = []
        # Bumped on every change worth persisting; the owner compares it to what it stored.
        self.state_epoch = 0
        self.archived_total = 0

    # -- loading and persisting ---------------------------------------------------------------

    @classmethod
    def restore(
        cls, start_offset: int, batches: Iterable[StateBatch], limits: SharePartitionLimits
    ) -> SharePartition:
        """Rebuild from persisted state; nothing is acquired after a restart."""
        partition = cls(start_offset, limits)
        for batch in batches:
            for offset in range(max(batch.first_offset, start_offset), batch.last_offset + 1):
                state = batch.state if batch.state in TERMINAL else RecordState.AVAILABLE
                partition.records[offset] = InFlight(state, batch.delivery_count)
                partition.end_offset = max(partition.end_offset, offset + 1)
        for offset in range(start_offset, partition.end_offset):
            # Never delivered, so possibly delayed: acquisition rereads its delivery time.
            partition.records.setdefault(
                offset, InFlight(RecordState.AVAILABLE, deliver_after_ms=DELIVERY_TIME_UNKNOWN)
            )
        partition._advance_start()
        return partition

    def state_batches(self) -> list[StateBatch]:
        """The window as runs worth persisting: terminal records, and available ones already
        delivered. An acquired record is stored as available with its count before this
        acquisition, so a crash simply redelivers it."""
        batches: list[StateBatch] = []
        for offset in range(self.start_offset, self.end_offset):
            record = self.records[offset]
            state, count = record.state, record.delivery_count
            if state is RecordState.ACQUIRED:
                state, count = RecordState.AVAILABLE, count - 1
            if state is RecordState.AVAILABLE and count == 0:
                continue
            last = batches[-1] if batches else None
            if (
                last is not None
                and last.last_offset == offset - 1
                and last.state is state
                and last.delivery_count == count
            ):
                batches[-1] = StateBatch(last.first_offset, offset, state, count)
            else:
                batches.append(StateBatch(offset, offset, state, count))
        return batches

    # -- acquisition ----------------------------------------------------------------------------

    def next_candidate(self, from_offset: int, now_wall_ms: int) -> int | None:
        """The first offset at or after `from_offset` that may be acquired now, or None when the
        in-flight window is full and holds nothing to redeliver."""
        offset = max(from_offset, self.start_offset)
        while offset < self.end_offset:
            record = self.records[offset]
            if record.state is RecordState.AVAILABLE and record.deliver_after_ms <= now_wall_ms:
                return offset
            offset += 1
        if offset - self.start_offset < self.limits.max_in_flight:
            return offset
        return None

    def acquire_range(
        self,
        first_offset: int,
        last_offset: int,
        member_id: str,
        now_ms: int,
        now_wall_ms: int,
        deliver_after: Callable[[int], int] | None = None,
        limit: int | None = None,
    ) -> list[AcquiredRange]:
        """Acquire what may be acquired in [first_offset, last_offset] (one stored batch):
        available tracked records, and new offsets while the window has room, at most `limit`
        of them. Delayed records are taken into the window but left available."""
        taken: list[tuple[int, int]] = []
        deadline = now_ms + self.limits.lock_duration_ms
        for offset in range(max(first_offset, self.start_offset), last_offset + 1):
            if limit is not None and len(taken) >= limit:
                break
            record = self.records.get(offset)
            if record is None:
                if offset != self.end_offset:
                    break  # only the first untracked offset may extend the window
                if offset - self.start_offset >= self.limits.max_in_flight:
                    break
                record = InFlight(RecordState.AVAILABLE)
                if deliver_after is not None:
                    record.deliver_after_ms = deliver_after(offset)
                self.records[offset] = record
                self.end_offset = offset + 1
            elif record.deliver_after_ms == DELIVERY_TIME_UNKNOWN:
                record.deliver_after_ms = 0 if deliver_after is None else deliver_after(offset)
            if record.state is RecordState.AVAILABLE and record.deliver_after_ms <= now_wall_ms:
                record.state = RecordState.ACQUIRED
                record.delivery_count += 1
                record.owner = member_id
                record.lock_deadline_ms = deadline
                taken.append((offset, record.delivery_count))
        if taken:
            heapq.heappush(self._locks, (deadline, taken[0][0], taken[-1][0]))
        return ranges_of(taken)

    def skip_missing(self, first_offset: int, before_offset: int) -> None:
        """Offsets the log no longer holds (compacted or deleted) can never be delivered:
        archive the tracked ones, and move the window past untracked ones."""
        for offset in range(max(first_offset, self.start_offset), before_offset):
            record = self.records.get(offset)
            if record is None:
                if offset != self.end_offset:
                    break
                self.records[offset] = InFlight(RecordState.ARCHIVED)
                self.end_offset = offset + 1
            elif record.state is RecordState.AVAILABLE:
                record.state = RecordState.ARCHIVED
        self._advance_start()

    def move_start(self, log_start_offset: int) -> bool:
        """Retention or DeleteRecords removed records below `log_start_offset`: they are gone
        for this group too. Returns whether anything changed."""
        if log_start_offset <= self.start_offset:
            return False
        for offset in range(self.start_offset, min(log_start_offset, self.end_offset)):
            del self.records[offset]
        self.start_offset = log_start_offset
        self.end_offset = max(self.end_offset, log_start_offset)
        self.state_epoch += 1
        self._advance_start()
        return True

    # -- acknowledgement ------------------------------------------------------------------------

    def acknowledge(
        self, member_id: str, acks: list[Acknowledgement], now_ms: int
    ) -> list[DeadLetter]:
        """Apply one partition's acks all or nothing. Raises InvalidRecordState when any offset
        is not acquired by `member_id` (nothing is applied then)."""
        plan: list[tuple[int, int]] = []
        for ack in acks:
            for offset in range(ack.first_offset, ack.last_offset + 1):
                record = self.records.get(offset)
                if (
                    record is None
                    or record.state is not RecordState.ACQUIRED
                    or record.owner != member_id
                ):
                    raise InvalidRecordState(
                        f"offset {offset} is not acquired by member {member_id}"
                    )
                ack_type = (
                    ack.types[0] if len(ack.types) == 1 else ack.types[offset - ack.first_offset]
                )
                plan.append((offset, ack_type))
        dead: list[DeadLetter] = []
        renewed = now_ms + self.limits.lock_duration_ms
        for offset, ack_type in plan:
            record = self.records[offset]
            if ack_type == AckType.ACCEPT:
                self._finish(record, RecordState.ACKNOWLEDGED)
            elif ack_type == AckType.RELEASE:
                letter = self._release(offset, record, count_delivery=True)
                if letter is not None:
                    dead.append(letter)
            elif ack_type == AckType.REJECT:
                self._finish(record, RecordState.ARCHIVED)
                dead.append(DeadLetter(offset, Disposition.CLIENT_REJECTED, record.delivery_count))
            elif ack_type == AckType.GAP:
                self._finish(record, RecordState.ARCHIVED)
            elif ack_type == AckType.RENEW:
                record.lock_deadline_ms = renewed
                heapq.heappush(self._locks, (renewed, offset, offset))
        self.state_epoch += 1
        self._advance_start()
        return dead

    def release_member(
        self, member_id: str, *, count_delivery: bool
    ) -> tuple[bool, list[DeadLetter]]:
        """Give back what the member still holds: (anything released, dead letters). A member
        that closed cleanly never processed what it held, so that delivery is not counted (as
        in Kafka); one that vanished may have died on a record, so it is."""
        held = [
            offset
            for offset in range(self.start_offset, self.end_offset)
            if self.records[offset].state is RecordState.ACQUIRED
            and self.records[offset].owner == member_id
        ]
        return self._release_all(held, count_delivery=count_delivery)

    def expire_locks(self, now_ms: int) -> tuple[bool, list[DeadLetter]]:
        """Release every record whose lock ran out: (anything released, dead letters)."""
        expired = []
        while self._locks and self._locks[0][0] <= now_ms:
            deadline, first, last = heapq.heappop(self._locks)
            for offset in range(max(first, self.start_offset), last + 1):
                record = self.records.get(offset)
                # Skip what was acknowledged, renewed or forgotten since.
                if (
                    record is not None
                    and record.state is RecordState.ACQUIRED
                    and record.lock_deadline_ms == deadline
                ):
                    expired.append(offset)
        # Two spans may expire at the same millisecond and name one offset: release it once.
        return self._release_all(list(dict.fromkeys(expired)), count_delivery=True)

    def _release_all(
        self, offsets: list[int], *, count_delivery: bool
    ) -> tuple[bool, list[DeadLetter]]:
        dead = []
        for offset in offsets:
            letter = self._release(offset, self.records[offset], count_delivery=count_delivery)
            if letter is not None:
                dead.append(letter)
        if offsets:
            self.state_epoch += 1
            self._advance_start()
        return bool(offsets), dead

    def next_lock_deadline(self) -> int | None:
        return self._locks[0][0] if self._locks else None

    # -- reporting ------------------------------------------------------------------------------

    def count(self, state: RecordState) -> int:
        return sum(1 for record in self.records.values() if record.state is state)

    def first_available(self, now_wall_ms: int) -> int | None:
        """The oldest offset waiting to be delivered (tracked or not yet read)."""
        for offset in range(self.start_offset, self.end_offset):
            record = self.records[offset]
            if record.state is RecordState.AVAILABLE and record.deliver_after_ms <= now_wall_ms:
                return offset
        return None

    def done_in_window(self) -> int:
        return sum(1 for record in self.records.values() if record.state in TERMINAL)

    # -- internals -----------------------------------------------------------------------------

    def _release(self, offset: int, record: InFlight, *, count_delivery: bool) -> DeadLetter | None:
        if not count_delivery:
            record.delivery_count -= 1
        record.owner = None
        if count_delivery and record.delivery_count >= self.limits.delivery_count_limit:
            self._finish(record, RecordState.ARCHIVED)
            return DeadLetter(
                offset, Disposition.MAX_DELIVERY_ATTEMPTS_REACHED, record.delivery_count
            )
        record.state = RecordState.AVAILABLE
        return None

    def _finish(self, record: InFlight, state: RecordState) -> None:
        record.state = state
        record.owner = None
        if state is RecordState.ARCHIVED:
            self.archived_total += 1

    def _advance_start(self) -> None:
        offset = self.start_offset
        while offset < self.end_offset and self.records[offset].state in TERMINAL:
            del self.records[offset]
            offset += 1
        if offset != self.start_offset:
            self.start_offset = offset
            self.state_epoch += 1
