from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import invariant
from hypothesis.stateful import rule

from millpond.coordinator.share_partition import TERMINAL
from millpond.coordinator.share_partition import Acknowledgement
from millpond.coordinator.share_partition import AckType
from millpond.coordinator.share_partition import AcquiredRange
from millpond.coordinator.share_partition import DeadLetter
from millpond.coordinator.share_partition import Disposition
from millpond.coordinator.share_partition import InvalidAcknowledgement
from millpond.coordinator.share_partition import InvalidRecordState
from millpond.coordinator.share_partition import RecordState
from millpond.coordinator.share_partition import SharePartition
from millpond.coordinator.share_partition import SharePartitionLimits
from millpond.coordinator.share_partition import StateBatch
from millpond.coordinator.share_partition import ranges_of
from millpond.coordinator.share_partition import validate_acknowledgements

LOCK_MS = 1_000
LIMIT = 3
LIMITS = SharePartitionLimits(
    lock_duration_ms=LOCK_MS, delivery_count_limit=LIMIT, max_in_flight=10
)


def partition(start: int = 0, limits: SharePartitionLimits = LIMITS) -> SharePartition:
    return SharePartition(start, limits)


def acquire(
    p: SharePartition, first: int, last: int, member: str = "a", now: int = 0, wall: int = 0
) -> list[AcquiredRange]:
    return p.acquire_range(first, last, member, now, wall)


def ack(first: int, last: int, *types: AckType) -> Acknowledgement:
    return Acknowledgement(first, last, tuple(int(t) for t in types))


def states(p: SharePartition) -> dict[int, tuple[RecordState, int, str | None]]:
    return {o: (r.state, r.delivery_count, r.owner) for o, r in sorted(p.records.items())}


# -- acquisition ------------------------------------------------------------------------------


def test_a_new_partition_is_empty_and_offers_its_start() -> None:
    p = partition(5)
    assert (p.start_offset, p.end_offset) == (5, 5)
    assert p.records == {}
    assert p.next_candidate(0, 0) == 5
    assert p.next_lock_deadline() is None


def test_acquire_takes_new_offsets_with_one_delivery_and_a_lock() -> None:
    p = partition()
    assert acquire(p, 0, 4, now=100) == [AcquiredRange(0, 4, 1)]
    assert p.end_offset == 5
    for record in p.records.values():
        assert record.state is RecordState.ACQUIRED
        assert record.owner == "a"
        assert record.lock_deadline_ms == 100 + LOCK_MS
    assert p.next_lock_deadline() == 100 + LOCK_MS
    assert p.count(RecordState.ACQUIRED) == 5


def test_an_acquired_record_is_not_handed_to_another_member() -> None:
    p = partition()
    acquire(p, 0, 2, "a")
    assert acquire(p, 0, 4, "b") == [AcquiredRange(3, 4, 1)]
    assert {o: r.owner for o, r in p.records.items()} == {0: "a", 1: "a", 2: "a", 3: "b", 4: "b"}


def test_acquire_only_extends_the_window_from_its_end() -> None:
    p = partition()
    acquire(p, 0, 1)
    assert acquire(p, 5, 9) == []
    assert p.end_offset == 2
    assert 5 not in p.records


def test_acquire_below_the_start_offset_is_clamped() -> None:
    p = partition(10)
    assert acquire(p, 3, 11) == [AcquiredRange(10, 11, 1)]
    assert sorted(p.records) == [10, 11]


def test_ranges_split_where_delivery_counts_differ() -> None:
    p = partition()
    acquire(p, 0, 3)
    p.acknowledge("a", [ack(1, 2, AckType.RELEASE)], 0)
    p.acknowledge("a", [ack(0, 0, AckType.ACCEPT), ack(3, 3, AckType.ACCEPT)], 0)
    assert acquire(p, 0, 5, "b") == [AcquiredRange(1, 2, 2), AcquiredRange(4, 5, 1)]


def test_ranges_of_merges_consecutive_offsets_with_one_count() -> None:
    assert ranges_of([]) == []
    assert ranges_of([(1, 1), (2, 1), (4, 1), (5, 2), (6, 2)]) == [
        AcquiredRange(1, 2, 1),
        AcquiredRange(4, 4, 1),
        AcquiredRange(5, 6, 2),
    ]


# -- acknowledgement --------------------------------------------------------------------------


def test_accepting_the_leading_records_moves_the_start_and_forgets_them() -> None:
    p = partition()
    acquire(p, 0, 4)
    epoch = p.state_epoch
    assert p.acknowledge("a", [ack(0, 2, AckType.ACCEPT)], 0) == []
    assert p.start_offset == 3
    assert sorted(p.records) == [3, 4]
    assert p.state_epoch > epoch


def test_an_accepted_record_in_the_middle_waits_for_the_ones_before_it() -> None:
    p = partition()
    acquire(p, 0, 2)
    p.acknowledge("a", [ack(1, 1, AckType.ACCEPT)], 0)
    assert p.start_offset == 0
    assert p.records[1].state is RecordState.ACKNOWLEDGED
    assert p.records[1].owner is None
    assert p.done_in_window() == 1
    p.acknowledge("a", [ack(0, 0, AckType.ACCEPT)], 0)
    assert p.start_offset == 2
    assert p.done_in_window() == 0


def test_an_accepted_record_is_never_redelivered() -> None:
    p = partition()
    acquire(p, 0, 2)
    p.acknowledge("a", [ack(1, 1, AckType.ACCEPT)], 0)
    p.release_member("a", count_delivery=True)
    assert p.next_candidate(0, 0) == 0
    assert acquire(p, 0, 2, "b") == [AcquiredRange(0, 0, 2), AcquiredRange(2, 2, 2)]
    p.expire_locks(10 * LOCK_MS)
    assert p.records[1].state is RecordState.ACKNOWLEDGED


def test_release_makes_a_record_available_again_with_its_count() -> None:
    p = partition()
    acquire(p, 0, 0)
    assert p.acknowledge("a", [ack(0, 0, AckType.RELEASE)], 0) == []
    record = p.records[0]
    assert (record.state, record.delivery_count, record.owner) == (RecordState.AVAILABLE, 1, None)
    assert acquire(p, 0, 0, "b") == [AcquiredRange(0, 0, 2)]


def test_released_records_come_back_before_new_ones_lowest_offset_first() -> None:
    p = partition()
    acquire(p, 0, 5)
    p.acknowledge("a", [ack(4, 4, AckType.RELEASE), ack(1, 2, AckType.RELEASE)], 0)
    assert p.next_candidate(0, 0) == 1
    assert p.next_candidate(2, 0) == 2
    assert p.next_candidate(3, 0) == 4
    assert p.next_candidate(5, 0) == 6
    assert p.first_available(0) == 1


def test_reject_archives_with_a_dead_letter() -> None:
    p = partition()
    acquire(p, 0, 1)
    dead = p.acknowledge("a", [ack(0, 1, AckType.REJECT)], 0)
    assert dead == [
        DeadLetter(0, Disposition.CLIENT_REJECTED, 1),
        DeadLetter(1, Disposition.CLIENT_REJECTED, 1),
    ]
    assert p.start_offset == 2
    assert p.archived_total == 2


def test_gap_archives_without_a_dead_letter() -> None:
    p = partition()
    acquire(p, 0, 2)
    assert p.acknowledge("a", [ack(1, 1, AckType.GAP)], 0) == []
    assert p.records[1].state is RecordState.ARCHIVED
    assert p.archived_total == 1


def test_one_type_per_offset() -> None:
    p = partition()
    acquire(p, 0, 3)
    dead = p.acknowledge(
        "a", [ack(0, 3, AckType.ACCEPT, AckType.RELEASE, AckType.REJECT, AckType.GAP)], 0
    )
    assert dead == [DeadLetter(2, Disposition.CLIENT_REJECTED, 1)]
    assert p.start_offset == 1
    assert states(p) == {
        1: (RecordState.AVAILABLE, 1, None),
        2: (RecordState.ARCHIVED, 1, None),
        3: (RecordState.ARCHIVED, 1, None),
    }


def test_releases_past_the_delivery_limit_archive_with_a_dead_letter() -> None:
    p = partition()
    for delivery in range(1, LIMIT):
        assert acquire(p, 0, 0, now=delivery) == [AcquiredRange(0, 0, delivery)]
        assert p.acknowledge("a", [ack(0, 0, AckType.RELEASE)], delivery) == []
    assert acquire(p, 0, 0) == [AcquiredRange(0, 0, LIMIT)]
    dead = p.acknowledge("a", [ack(0, 0, AckType.RELEASE)], 0)
    assert dead == [DeadLetter(0, Disposition.MAX_DELIVERY_ATTEMPTS_REACHED, LIMIT)]
    assert p.start_offset == 1
    assert p.archived_total == 1


def test_acks_from_another_member_are_refused_and_nothing_is_applied() -> None:
    p = partition()
    acquire(p, 0, 1, "a")
    acquire(p, 2, 3, "b")
    before, epoch = states(p), p.state_epoch
    with pytest.raises(InvalidRecordState):
        p.acknowledge("a", [ack(0, 1, AckType.ACCEPT), ack(2, 2, AckType.ACCEPT)], 0)
    with pytest.raises(InvalidRecordState):
        p.acknowledge("b", [ack(0, 0, AckType.REJECT)], 0)
    assert states(p) == before
    assert (p.start_offset, p.state_epoch, p.archived_total) == (0, epoch, 0)


@pytest.mark.parametrize(
    "acks",
    [
        [ack(5, 5, AckType.ACCEPT)],  # never read
        [ack(0, 0, AckType.ACCEPT)],  # below the start offset, forgotten
        [ack(1, 1, AckType.ACCEPT), ack(2, 2, AckType.ACCEPT)],  # 2 is available
        [ack(3, 3, AckType.ACCEPT)],  # 3 is acknowledged already
    ],
)
def test_acks_for_records_not_acquired_are_refused(acks: list[Acknowledgement]) -> None:
    p = partition()
    acquire(p, 0, 3)
    p.acknowledge("a", [ack(0, 0, AckType.ACCEPT), ack(3, 3, AckType.ACCEPT)], 0)
    p.acknowledge("a", [ack(2, 2, AckType.RELEASE)], 0)
    before = states(p)
    with pytest.raises(InvalidRecordState):
        p.acknowledge("a", acks, 0)
    assert states(p) == before


# -- locks ------------------------------------------------------------------------------------


def test_an_expired_lock_makes_the_record_available_and_refuses_later_acks() -> None:
    p = partition()
    acquire(p, 0, 1, now=0)
    assert p.expire_locks(LOCK_MS - 1) == (False, [])
    assert p.count(RecordState.ACQUIRED) == 2
    epoch = p.state_epoch
    assert p.expire_locks(LOCK_MS) == (True, [])
    assert p.state_epoch > epoch
    assert p.count(RecordState.AVAILABLE) == 2
    assert all(r.owner is None for r in p.records.values())
    assert p.next_lock_deadline() is None
    with pytest.raises(InvalidRecordState):
        p.acknowledge("a", [ack(0, 0, AckType.ACCEPT)], LOCK_MS)
    assert acquire(p, 0, 1, "b", now=LOCK_MS) == [AcquiredRange(0, 1, 2)]


def test_lock_expiry_on_the_last_delivery_archives_with_a_dead_letter() -> None:
    p = partition()
    now = 0
    for _ in range(LIMIT - 1):
        acquire(p, 0, 0, now=now)
        now += LOCK_MS
        assert p.expire_locks(now) == (True, [])
    acquire(p, 0, 0, now=now)
    changed, dead = p.expire_locks(now + LOCK_MS)
    assert changed
    assert dead == [DeadLetter(0, Disposition.MAX_DELIVERY_ATTEMPTS_REACHED, LIMIT)]
    assert p.start_offset == 1


def test_locks_expire_by_their_own_deadlines() -> None:
    p = partition()
    acquire(p, 0, 0, "a", now=0)
    acquire(p, 1, 1, "b", now=500)
    assert p.next_lock_deadline() == LOCK_MS
    p.expire_locks(LOCK_MS)
    assert p.records[0].state is RecordState.AVAILABLE
    assert p.records[1].state is RecordState.ACQUIRED
    assert p.next_lock_deadline() == 500 + LOCK_MS


def test_acknowledged_records_are_left_alone_when_their_lock_runs_out() -> None:
    p = partition()
    acquire(p, 0, 2)
    p.acknowledge("a", [ack(0, 2, AckType.ACCEPT)], 0)
    assert p.expire_locks(LOCK_MS) == (False, [])
    assert p.start_offset == 3


def test_renew_extends_the_lock() -> None:
    p = partition()
    acquire(p, 0, 1, now=0)
    assert p.acknowledge("a", [ack(0, 0, AckType.RENEW)], 800) == []
    assert p.records[0].lock_deadline_ms == 800 + LOCK_MS
    p.expire_locks(LOCK_MS)
    assert p.records[0].state is RecordState.ACQUIRED
    assert p.records[1].state is RecordState.AVAILABLE
    p.acknowledge("a", [ack(0, 0, AckType.ACCEPT)], LOCK_MS + 1)
    assert p.start_offset == 1


def test_a_renewed_lock_still_expires() -> None:
    p = partition()
    acquire(p, 0, 0, now=0)
    p.acknowledge("a", [ack(0, 0, AckType.RENEW)], 500)
    assert p.expire_locks(500 + LOCK_MS) == (True, [])
    assert p.records[0].state is RecordState.AVAILABLE


def test_a_renew_keeps_the_delivery_count() -> None:
    p = partition()
    acquire(p, 0, 0)
    p.acknowledge("a", [ack(0, 0, AckType.RENEW)], 10)
    assert (p.records[0].delivery_count, p.records[0].owner) == (1, "a")


# -- releasing a member -----------------------------------------------------------------------


def test_release_member_gives_back_only_that_members_records() -> None:
    p = partition()
    acquire(p, 0, 1, "a")
    acquire(p, 2, 3, "b")
    changed, dead = p.release_member("a", count_delivery=True)
    assert (changed, dead) == (True, [])
    assert states(p) == {
        0: (RecordState.AVAILABLE, 1, None),
        1: (RecordState.AVAILABLE, 1, None),
        2: (RecordState.ACQUIRED, 1, "b"),
        3: (RecordState.ACQUIRED, 1, "b"),
    }
    assert p.release_member("a", count_delivery=True) == (False, [])
    assert p.release_member("nobody", count_delivery=False) == (False, [])


def test_release_member_without_counting_undoes_the_delivery() -> None:
    p = partition()
    for _ in range(LIMIT - 1):
        acquire(p, 0, 0)
        p.acknowledge("a", [ack(0, 0, AckType.RELEASE)], 0)
    acquire(p, 0, 0)
    assert p.records[0].delivery_count == LIMIT
    assert p.release_member("a", count_delivery=False) == (True, [])
    assert (p.records[0].state, p.records[0].delivery_count) == (RecordState.AVAILABLE, LIMIT - 1)
    assert acquire(p, 0, 0, "b") == [AcquiredRange(0, 0, LIMIT)]


def test_release_member_counting_the_delivery_archives_at_the_limit() -> None:
    p = partition()
    for _ in range(LIMIT - 1):
        acquire(p, 0, 0)
        p.acknowledge("a", [ack(0, 0, AckType.RELEASE)], 0)
    acquire(p, 0, 1)
    changed, dead = p.release_member("a", count_delivery=True)
    assert changed
    assert dead == [DeadLetter(0, Disposition.MAX_DELIVERY_ATTEMPTS_REACHED, LIMIT)]
    assert p.start_offset == 1
    assert states(p) == {1: (RecordState.AVAILABLE, 1, None)}


def test_a_released_lock_does_not_expire_a_later_acquisition() -> None:
    p = partition()
    acquire(p, 0, 0, "a", now=0)
    p.release_member("a", count_delivery=True)
    acquire(p, 0, 0, "b", now=300)
    assert p.expire_locks(LOCK_MS) == (False, [])
    assert p.records[0].owner == "b"
    assert p.expire_locks(300 + LOCK_MS) == (True, [])


# -- the in-flight window ---------------------------------------------------------------------


def test_new_offsets_stop_at_the_in_flight_limit() -> None:
    limits = SharePartitionLimits(LOCK_MS, LIMIT, max_in_flight=3)
    p = partition(limits=limits)
    assert acquire(p, 0, 9) == [AcquiredRange(0, 2, 1)]
    assert p.end_offset == 3
    assert p.next_candidate(0, 0) is None


def test_records_inside_a_full_window_are_still_redelivered() -> None:
    limits = SharePartitionLimits(LOCK_MS, LIMIT, max_in_flight=3)
    p = partition(limits=limits)
    acquire(p, 0, 2)
    p.acknowledge("a", [ack(1, 1, AckType.RELEASE)], 0)
    assert p.next_candidate(0, 0) == 1
    assert acquire(p, 0, 9, "b") == [AcquiredRange(1, 1, 2)]
    assert p.next_candidate(0, 0) is None


def test_a_record_done_at_the_start_makes_room_in_the_window() -> None:
    limits = SharePartitionLimits(LOCK_MS, LIMIT, max_in_flight=3)
    p = partition(limits=limits)
    acquire(p, 0, 2)
    p.acknowledge("a", [ack(2, 2, AckType.ACCEPT)], 0)
    assert p.next_candidate(0, 0) is None  # done, but not at the start
    p.acknowledge("a", [ack(0, 0, AckType.ACCEPT)], 0)
    assert p.next_candidate(0, 0) == 3
    assert acquire(p, 3, 9) == [AcquiredRange(3, 3, 1)]


# -- delayed delivery -------------------------------------------------------------------------


def test_a_delayed_record_is_tracked_but_not_acquired_before_its_time() -> None:
    p = partition()
    due = {0: 0, 1: 500, 2: 0}
    ranges = p.acquire_range(0, 2, "a", 0, 100, deliver_after=due.__getitem__)
    assert ranges == [AcquiredRange(0, 0, 1), AcquiredRange(2, 2, 1)]
    assert p.end_offset == 3
    assert states(p)[1] == (RecordState.AVAILABLE, 0, None)
    assert p.next_candidate(0, 100) == 3
    assert p.first_available(100) is None
    assert p.first_available(500) == 1
    assert p.acquire_range(0, 2, "b", 0, 499) == []
    assert p.next_candidate(0, 500) == 1
    assert p.acquire_range(0, 2, "b", 0, 500) == [AcquiredRange(1, 1, 1)]


def test_a_delayed_record_keeps_the_start_offset_back() -> None:
    p = partition()
    p.acquire_range(0, 1, "a", 0, 0, deliver_after=lambda offset: 1_000 * offset)
    p.acknowledge("a", [ack(0, 0, AckType.ACCEPT)], 0)
    assert p.start_offset == 1
    assert p.records[1].state is RecordState.AVAILABLE


def test_the_delay_is_asked_once_when_the_offset_joins_the_window() -> None:
    p = partition()
    asked: list[int] = []

    def deliver_after(offset: int) -> int:
        asked.append(offset)
        return 0

    p.acquire_range(0, 1, "a", 0, 0, deliver_after=deliver_after)
    p.release_member("a", count_delivery=True)
    p.acquire_range(0, 2, "a", 0, 0, deliver_after=deliver_after)
    assert asked == [0, 1, 2]


# -- offsets the log no longer has ------------------------------------------------------------


def test_skip_missing_archives_untracked_offsets_and_moves_the_start() -> None:
    p = partition()
    p.skip_missing(0, 4)
    assert (p.start_offset, p.end_offset) == (4, 4)
    assert p.records == {}
    assert acquire(p, 4, 4) == [AcquiredRange(4, 4, 1)]


def test_skip_missing_archives_available_records_and_keeps_acquired_ones() -> None:
    p = partition()
    acquire(p, 0, 3)
    p.acknowledge("a", [ack(1, 2, AckType.RELEASE)], 0)
    p.skip_missing(1, 6)
    assert states(p) == {
        0: (RecordState.ACQUIRED, 1, "a"),
        1: (RecordState.ARCHIVED, 1, None),
        2: (RecordState.ARCHIVED, 1, None),
        3: (RecordState.ACQUIRED, 1, "a"),
        4: (RecordState.ARCHIVED, 0, None),
        5: (RecordState.ARCHIVED, 0, None),
    }
    assert p.end_offset == 6
    p.acknowledge("a", [ack(0, 0, AckType.GAP), ack(3, 3, AckType.ACCEPT)], 0)
    assert (p.start_offset, p.records) == (6, {})


def test_skip_missing_does_not_jump_past_the_window_end() -> None:
    p = partition()
    acquire(p, 0, 0)
    p.skip_missing(3, 5)
    assert (p.start_offset, p.end_offset) == (0, 1)


def test_move_start_forgets_what_retention_deleted() -> None:
    p = partition()
    acquire(p, 0, 3)
    epoch = p.state_epoch
    assert p.move_start(2)
    assert (p.start_offset, p.end_offset) == (2, 4)
    assert sorted(p.records) == [2, 3]
    assert p.state_epoch > epoch
    assert not p.move_start(2)
    assert not p.move_start(1)
    with pytest.raises(InvalidRecordState):
        p.acknowledge("a", [ack(0, 0, AckType.ACCEPT)], 0)
    assert p.expire_locks(LOCK_MS) == (True, [])
    assert p.count(RecordState.AVAILABLE) == 2


def test_move_start_past_the_window_end() -> None:
    p = partition()
    acquire(p, 0, 1)
    assert p.move_start(10)
    assert (p.start_offset, p.end_offset, p.records) == (10, 10, {})
    assert p.next_candidate(0, 0) == 10


def test_move_start_moves_on_past_records_already_done() -> None:
    p = partition()
    acquire(p, 0, 3)
    p.acknowledge("a", [ack(1, 2, AckType.ACCEPT)], 0)
    p.move_start(1)
    assert p.start_offset == 3
    assert sorted(p.records) == [3]


# -- persistence ------------------------------------------------------------------------------


def test_state_batches_store_acquired_records_as_available_before_this_delivery() -> None:
    p = partition()
    acquire(p, 0, 5)
    p.acknowledge(
        "a",
        [
            ack(1, 1, AckType.ACCEPT),
            ack(2, 3, AckType.RELEASE),
            ack(4, 4, AckType.REJECT),
        ],
        0,
    )
    acquire(p, 2, 2, "b")
    assert p.state_batches() == [
        StateBatch(1, 1, RecordState.ACKNOWLEDGED, 1),
        StateBatch(2, 3, RecordState.AVAILABLE, 1),
        StateBatch(4, 4, RecordState.ARCHIVED, 1),
    ]


def test_restore_round_trips_with_nothing_acquired() -> None:
    p = partition(3)
    acquire(p, 3, 9)
    p.acknowledge(
        "a",
        [ack(4, 4, AckType.ACCEPT), ack(5, 6, AckType.RELEASE), ack(8, 8, AckType.GAP)],
        0,
    )
    acquire(p, 5, 5, "b")
    restored = SharePartition.restore(p.start_offset, p.state_batches(), LIMITS)
    assert restored.start_offset == 3
    assert restored.end_offset == 9  # trailing never-counted offsets need not be kept
    assert states(restored) == {
        3: (RecordState.AVAILABLE, 0, None),
        4: (RecordState.ACKNOWLEDGED, 1, None),
        5: (RecordState.AVAILABLE, 1, None),
        6: (RecordState.AVAILABLE, 1, None),
        7: (RecordState.AVAILABLE, 0, None),
        8: (RecordState.ARCHIVED, 1, None),
    }
    assert restored.state_batches() == p.state_batches()
    assert restored.next_lock_deadline() is None


def test_restore_skips_batches_below_the_start_and_moves_past_leading_done_records() -> None:
    batches = [
        StateBatch(0, 4, RecordState.ARCHIVED, 2),
        StateBatch(5, 6, RecordState.ACKNOWLEDGED, 1),
        StateBatch(8, 8, RecordState.AVAILABLE, 2),
    ]
    restored = SharePartition.restore(3, batches, LIMITS)
    assert (restored.start_offset, restored.end_offset) == (7, 9)
    assert states(restored) == {
        7: (RecordState.AVAILABLE, 0, None),
        8: (RecordState.AVAILABLE, 2, None),
    }


def test_restore_treats_a_persisted_acquired_state_as_available() -> None:
    restored = SharePartition.restore(0, [StateBatch(0, 0, RecordState.ACQUIRED, 2)], LIMITS)
    assert states(restored) == {0: (RecordState.AVAILABLE, 2, None)}


def test_restore_of_nothing_is_an_empty_window() -> None:
    restored = SharePartition.restore(42, [], LIMITS)
    assert (restored.start_offset, restored.end_offset, restored.records) == (42, 42, {})


# -- request validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "acks",
    [
        [],
        [ack(0, 0, AckType.ACCEPT)],
        [ack(0, 2, AckType.ACCEPT, AckType.RELEASE, AckType.GAP), ack(3, 3, AckType.REJECT)],
        [ack(5, 9, AckType.GAP), ack(20, 20, AckType.ACCEPT)],
    ],
)
def test_valid_acknowledgements(acks: list[Acknowledgement]) -> None:
    validate_acknowledgements(acks, max_type=3)


@pytest.mark.parametrize(
    "acks",
    [
        [ack(3, 2, AckType.ACCEPT)],  # first after last
        [ack(-1, 2, AckType.ACCEPT)],  # negative offset
        [ack(0, 2, AckType.ACCEPT), ack(2, 3, AckType.ACCEPT)],  # overlapping
        [ack(4, 5, AckType.ACCEPT), ack(0, 1, AckType.ACCEPT)],  # descending
        [ack(0, 2, AckType.ACCEPT, AckType.ACCEPT)],  # two types for three offsets
        [Acknowledgement(0, 0, ())],  # no type
        [Acknowledgement(0, 0, (4,))],  # RENEW is not in v1
        [Acknowledgement(0, 0, (-1,))],
        [Acknowledgement(0, 1, (1, 9))],
    ],
)
def test_invalid_acknowledgements(acks: list[Acknowledgement]) -> None:
    with pytest.raises(InvalidAcknowledgement):
        validate_acknowledgements(acks, max_type=3)


def test_renew_is_valid_when_the_version_allows_it() -> None:
    validate_acknowledgements([Acknowledgement(0, 0, (int(AckType.RENEW),))], max_type=4)


# -- a model of the state machine -------------------------------------------------------------

MEMBERS = ("a", "b", "c")
MODEL_LIMITS = SharePartitionLimits(lock_duration_ms=100, delivery_count_limit=3, max_in_flight=6)


@dataclass
class ModelRecord:
    state: RecordState = RecordState.AVAILABLE
    delivery_count: int = 0
    owner: str | None = None
    deadline: int = 0


class SharePartitionMachine(RuleBasedStateMachine):
    """SharePartition against a plain dict model, restarts (persist + restore) included."""

    def __init__(self) -> None:
        super().__init__()
        self.limits = MODEL_LIMITS
        self.partition = SharePartition(0, self.limits)
        self.start = 0
        self.records: dict[int, ModelRecord] = {}
        self.now = 0
        self.accepted: set[int] = set()
        self.state_epoch = 0

    @property
    def end(self) -> int:
        return max(self.records, default=self.start - 1) + 1

    # model transitions

    def _advance(self) -> None:
        while self.start in self.records and self.records[self.start].state in TERMINAL:
            del self.records[self.start]
            self.start += 1

    def _release(self, offset: int, *, count_delivery: bool) -> DeadLetter | None:
        record = self.records[offset]
        record.owner = None
        if not count_delivery:
            record.delivery_count -= 1
        elif record.delivery_count >= self.limits.delivery_count_limit:
            record.state = RecordState.ARCHIVED
            return DeadLetter(
                offset, Disposition.MAX_DELIVERY_ATTEMPTS_REACHED, record.delivery_count
            )
        record.state = RecordState.AVAILABLE
        return None

    def _acquire(self, first: int, last: int, member: str) -> list[tuple[int, int]]:
        taken = []
        for offset in range(max(first, self.start), last + 1):
            if offset not in self.records:
                if offset != max(self.end, self.start):
                    break
                if offset - self.start >= self.limits.max_in_flight:
                    break
                self.records[offset] = ModelRecord()
            record = self.records[offset]
            if record.state is RecordState.AVAILABLE:
                record.state = RecordState.ACQUIRED
                record.delivery_count += 1
                record.owner = member
                record.deadline = self.now + self.limits.lock_duration_ms
                taken.append((offset, record.delivery_count))
        return taken

    # rules

    @rule(member=st.sampled_from(MEMBERS), first=st.integers(0, 20), size=st.integers(1, 8))
    def acquire_range(self, member: str, first: int, size: int) -> None:
        owners_before = {o: r.owner for o, r in self.records.items()}
        ranges = self.partition.acquire_range(first, first + size - 1, member, self.now, self.now)
        expected = self._acquire(first, first + size - 1, member)
        assert ranges == ranges_of(expected)
        for offset, _ in expected:
            assert owners_before.get(offset) is None, "acquired by two members"
            assert offset not in self.accepted, "an accepted record came back"

    @rule(member=st.sampled_from(MEMBERS), max_records=st.integers(1, 4))
    def fetch(self, member: str, max_records: int) -> None:
        """What the coordinator does: acquire from the first candidate on."""
        candidate = self.partition.next_candidate(self.partition.start_offset, self.now)
        available = [o for o, r in sorted(self.records.items()) if r.state is RecordState.AVAILABLE]
        if available:
            assert candidate == available[0]
        elif self.end - self.start < self.limits.max_in_flight:
            assert candidate == max(self.end, self.start)
        else:
            assert candidate is None
        if candidate is not None:
            self.acquire_range(member, candidate, max_records)

    @rule(
        member=st.sampled_from(MEMBERS),
        data=st.data(),
        ack_type=st.sampled_from(list(AckType)),
        per_offset=st.booleans(),
    )
    def acknowledge(
        self, member: str, data: st.DataObject, ack_type: AckType, per_offset: bool
    ) -> None:
        held = [o for o, r in self.records.items() if r.owner == member]
        if held and data.draw(st.integers(0, 3)) > 0:
            # Mostly what the member holds, so acks get applied and not only refused.
            pool = st.sampled_from(held)
        else:
            pool = st.integers(max(0, self.start - 2), self.end + 2)
        offsets = sorted(data.draw(st.sets(pool, min_size=1, max_size=6)))
        acks: list[Acknowledgement] = []
        for offset in offsets:
            if acks and acks[-1].last_offset == offset - 1:
                acks[-1] = Acknowledgement(acks[-1].first_offset, offset, acks[-1].types)
            else:
                acks.append(Acknowledgement(offset, offset, ()))
        plan: list[tuple[int, AckType]] = []
        for index, one in enumerate(acks):
            size = one.last_offset - one.first_offset + 1
            if per_offset:
                types = data.draw(
                    st.lists(st.sampled_from(list(AckType)), min_size=size, max_size=size)
                )
            else:
                types = [ack_type]
            acks[index] = Acknowledgement(one.first_offset, one.last_offset, tuple(map(int, types)))
            plan.extend(
                (o, types[0] if len(types) == 1 else types[o - one.first_offset])
                for o in range(one.first_offset, one.last_offset + 1)
            )
        validate_acknowledgements(acks, max_type=4)
        holds_all = all(
            o in self.records
            and self.records[o].state is RecordState.ACQUIRED
            and self.records[o].owner == member
            for o in offsets
        )
        if not holds_all:
            event("acknowledge refused")
            before = states(self.partition)
            epoch = self.partition.state_epoch
            with pytest.raises(InvalidRecordState):
                self.partition.acknowledge(member, acks, self.now)
            assert states(self.partition) == before
            assert self.partition.state_epoch == epoch
            return
        event("acknowledge applied")
        epoch = self.partition.state_epoch
        dead = self.partition.acknowledge(member, acks, self.now)
        assert self.partition.state_epoch > epoch
        expected: list[DeadLetter] = []
        for offset, kind in plan:
            record = self.records[offset]
            if kind is AckType.ACCEPT:
                record.state, record.owner = RecordState.ACKNOWLEDGED, None
                self.accepted.add(offset)
            elif kind is AckType.RELEASE:
                letter = self._release(offset, count_delivery=True)
                if letter is not None:
                    expected.append(letter)
            elif kind is AckType.REJECT:
                record.state, record.owner = RecordState.ARCHIVED, None
                expected.append(
                    DeadLetter(offset, Disposition.CLIENT_REJECTED, record.delivery_count)
                )
            elif kind is AckType.GAP:
                record.state, record.owner = RecordState.ARCHIVED, None
            else:
                record.deadline = self.now + self.limits.lock_duration_ms
        self._advance()
        assert dead == expected

    @rule(ms=st.integers(1, 150))
    def advance_clock(self, ms: int) -> None:
        self.now += ms

    @rule()
    def expire_locks(self) -> None:
        epoch = self.partition.state_epoch
        changed, dead = self.partition.expire_locks(self.now)
        assert (self.partition.state_epoch > epoch) == changed
        expired = []
        expected = []
        for offset, record in sorted(self.records.items()):
            if record.state is RecordState.ACQUIRED and record.deadline <= self.now:
                expired.append(offset)
                letter = self._release(offset, count_delivery=True)
                if letter is not None:
                    expected.append(letter)
        self._advance()
        assert changed == bool(expired)
        assert sorted(dead, key=lambda letter: letter.offset) == expected

    @rule(member=st.sampled_from(MEMBERS), count_delivery=st.booleans())
    def release_member(self, member: str, count_delivery: bool) -> None:
        epoch = self.partition.state_epoch
        changed, dead = self.partition.release_member(member, count_delivery=count_delivery)
        assert (self.partition.state_epoch > epoch) == changed
        expected = []
        held = []
        for offset, record in sorted(self.records.items()):
            if record.state is RecordState.ACQUIRED and record.owner == member:
                held.append(offset)
                letter = self._release(offset, count_delivery=count_delivery)
                if letter is not None:
                    expected.append(letter)
        self._advance()
        assert changed == bool(held)
        assert dead == expected
        if not count_delivery:
            assert dead == []

    @rule(by=st.integers(1, 4))
    def retention(self, by: int) -> None:
        log_start = self.start + by
        assert self.partition.move_start(log_start)
        for offset in range(self.start, log_start):
            self.records.pop(offset, None)
        self.start = log_start
        self._advance()

    @rule()
    def restart(self) -> None:
        batches = self.partition.state_batches()
        epoch = self.partition.state_epoch
        self.partition = SharePartition.restore(self.partition.start_offset, batches, self.limits)
        self.partition.state_epoch = epoch  # as the coordinator does with the stored epoch
        for record in self.records.values():
            if record.state is RecordState.ACQUIRED:
                record.state, record.owner = RecordState.AVAILABLE, None
                record.delivery_count -= 1
        # Never-delivered records at the end of the window are not worth storing.
        while self.records:
            last = max(self.records)
            record = self.records[last]
            if record.state is RecordState.AVAILABLE and record.delivery_count == 0:
                del self.records[last]
            else:
                break
        assert self.partition.state_batches() == batches
        assert self.partition.count(RecordState.ACQUIRED) == 0
        assert self.partition.next_lock_deadline() is None

    # invariants

    @invariant()
    def agrees_with_the_model(self) -> None:
        p = self.partition
        assert p.start_offset == self.start
        assert p.end_offset == max(self.end, self.start)
        assert sorted(p.records) == list(range(p.start_offset, p.end_offset))
        assert states(p) == {
            o: (r.state, r.delivery_count, r.owner) for o, r in sorted(self.records.items())
        }

    @invariant()
    def start_offset_is_past_every_done_record(self) -> None:
        p = self.partition
        assert all(offset >= p.start_offset for offset in p.records)
        if p.start_offset < p.end_offset:
            assert p.records[p.start_offset].state not in TERMINAL

    @invariant()
    def records_are_sane(self) -> None:
        for record in self.partition.records.values():
            assert 0 <= record.delivery_count <= self.limits.delivery_count_limit
            assert (record.owner is not None) == (record.state is RecordState.ACQUIRED)
            if record.state is RecordState.ACQUIRED:
                assert record.delivery_count >= 1
        assert self.partition.end_offset - self.partition.start_offset <= self.limits.max_in_flight

    @invariant()
    def state_epoch_never_goes_back(self) -> None:
        assert self.partition.state_epoch >= self.state_epoch
        self.state_epoch = self.partition.state_epoch

    @invariant()
    def persisted_state_restores_to_the_same_window(self) -> None:
        p = self.partition
        restored = SharePartition.restore(p.start_offset, p.state_batches(), self.limits)
        assert restored.start_offset == p.start_offset
        assert restored.count(RecordState.ACQUIRED) == 0
        for offset in range(p.start_offset, p.end_offset):
            record = p.records[offset]
            again = restored.records.get(offset)
            if record.state is RecordState.ACQUIRED:
                expected = (RecordState.AVAILABLE, record.delivery_count - 1)
            else:
                expected = (record.state, record.delivery_count)
            if again is None:
                assert expected == (RecordState.AVAILABLE, 0)
                assert offset >= restored.end_offset
            else:
                assert (again.state, again.delivery_count) == expected


SharePartitionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestSharePartitionMachine = SharePartitionMachine.TestCase


def test_a_restored_delayed_record_is_not_offered_before_its_time() -> None:
    limits = SharePartitionLimits(lock_duration_ms=1000, delivery_count_limit=3, max_in_flight=100)
    partition = SharePartition(0, limits)
    # Offset 0 delayed until wall time 5000; offset 1 delivered and accepted.
    partition.acquire_range(0, 1, "m", 0, 0, lambda offset: 5000 if offset == 0 else 0)
    partition.acknowledge("m", [Acknowledgement(1, 1, (1,))], 0)
    restored = SharePartition.restore(partition.start_offset, partition.state_batches(), limits)
    assert restored.next_candidate(0, 100) == 0  # its time is unknown until it is reread
    assert restored.acquire_range(0, 1, "m", 0, 100, lambda offset: 5000) == []
    got = restored.acquire_range(0, 1, "m", 0, 5000, lambda offset: 5000)
    assert [(r.first_offset, r.last_offset) for r in got] == [(0, 0)]


def test_a_limit_leaves_the_rest_of_a_batch_for_other_members() -> None:
    limits = SharePartitionLimits(lock_duration_ms=1000, delivery_count_limit=3, max_in_flight=100)
    partition = SharePartition(0, limits)
    first = partition.acquire_range(0, 9, "a", 0, 0, limit=4)
    second = partition.acquire_range(0, 9, "b", 0, 0, limit=4)
    assert [(r.first_offset, r.last_offset) for r in first] == [(0, 3)]
    assert [(r.first_offset, r.last_offset) for r in second] == [(4, 7)]
