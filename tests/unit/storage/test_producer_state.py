from __future__ import annotations

import dataclasses
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import invariant
from hypothesis.stateful import rule
from kio.schema.errors import ErrorCode

from millpond.clock import FakeClock
from millpond.protocol.records import CONTROL_MASK
from millpond.protocol.records import NO_PRODUCER_ID
from millpond.protocol.records import BatchHeader
from millpond.storage.producer_state import ACCEPT
from millpond.storage.producer_state import INT32_MAX
from millpond.storage.producer_state import Duplicate
from millpond.storage.producer_state import ProducerStateManager
from millpond.storage.producer_state import Reject
from millpond.storage.producer_state import snapshot_path

OUT_OF_ORDER = Reject(ErrorCode.out_of_order_sequence_number)
INVALID_EPOCH = Reject(ErrorCode.invalid_producer_epoch)
DAY_MS = 86_400_000


def make_batch(
    producer_id: int,
    epoch: int,
    base_sequence: int,
    count: int = 1,
    *,
    base_offset: int = 0,
    timestamp: int = 0,
    attributes: int = 0,
) -> BatchHeader:
    return BatchHeader(
        position=0,
        base_offset=base_offset,
        batch_length=49,
        partition_leader_epoch=0,
        magic=2,
        crc=0,
        attributes=attributes,
        last_offset_delta=count - 1,
        base_timestamp=timestamp,
        max_timestamp=timestamp,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=base_sequence,
        records_count=count,
    )


class MemoryLog:
    """The log as far as producer state cares: batch headers at assigned offsets."""

    def __init__(self) -> None:
        self.batches: list[BatchHeader] = []
        self.log_end_offset = 0

    def append(self, batch: BatchHeader, timestamp: int) -> BatchHeader:
        placed = dataclasses.replace(
            batch,
            base_offset=self.log_end_offset,
            base_timestamp=timestamp,
            max_timestamp=timestamp,
        )
        self.batches.append(placed)
        self.log_end_offset = placed.next_offset
        return placed

    def batches_from(self, offset: int) -> Iterator[BatchHeader]:
        return (b for b in self.batches if b.last_offset >= offset)


class Partition:
    """A manager and its log, appending the way the produce path will."""

    def __init__(self, directory: Path, clock: FakeClock | None = None) -> None:
        self.directory = directory
        self.clock = clock or FakeClock()
        self.log = MemoryLog()
        self.state = ProducerStateManager(directory, self.clock)

    def produce(self, batch: BatchHeader) -> BatchHeader:
        """Check, append and update; the batch must be accepted."""
        assert self.state.check(batch) == ACCEPT
        placed = self.log.append(batch, self.clock.wall_ms())
        self.state.update(placed, self.clock.wall_ms())
        return placed

    def restart(self, *, log_start_offset: int = 0) -> None:
        self.state = ProducerStateManager(self.directory, self.clock)
        self.state.load(log_start_offset, self.log.log_end_offset, self.log.batches_from)


@pytest.fixture
def partition(tmp_path: Path) -> Partition:
    return Partition(tmp_path)


def produce_run(
    partition: Partition, producer_id: int, epoch: int, batches: int
) -> list[BatchHeader]:
    """`batches` in-order batches of 2 records each, sequences from 0."""
    placed = []
    for i in range(batches):
        partition.produce(make_batch(producer_id, epoch, 2 * i, 2))
        placed.append(partition.log.batches[-1])
        partition.clock.advance(10)
    return placed


def as_duplicate(placed: BatchHeader) -> Duplicate:
    return Duplicate(placed.base_offset, placed.last_offset, placed.max_timestamp)


# -- the sequence table -------------------------------------------------------------------


def test_batch_without_producer_id_is_accepted(partition: Partition) -> None:
    batch = make_batch(NO_PRODUCER_ID, -1, -1, 3)
    assert partition.state.check(batch) == ACCEPT
    partition.state.update(batch, 0)
    assert partition.state.producer_ids == []


@pytest.mark.parametrize("base_sequence", [0, 1, 17, INT32_MAX])
def test_unknown_producer_accepts_any_sequence(partition: Partition, base_sequence: int) -> None:
    assert partition.state.check(make_batch(7, 0, base_sequence, 1)) == ACCEPT


@pytest.mark.parametrize("epoch", [0, 3])
def test_unknown_producer_accepts_any_epoch(partition: Partition, epoch: int) -> None:
    assert partition.state.check(make_batch(7, epoch, 5)) == ACCEPT


def test_same_epoch_next_sequence_is_accepted(partition: Partition) -> None:
    produce_run(partition, 7, 0, 2)  # sequences 0-1, 2-3
    assert partition.state.check(make_batch(7, 0, 4, 3)) == ACCEPT


@pytest.mark.parametrize("base_sequence", [5, 6, 1000, 1, 3])
def test_same_epoch_gap_or_overlap_is_out_of_order(
    partition: Partition, base_sequence: int
) -> None:
    produce_run(partition, 7, 0, 2)  # sequences 0-1, 2-3: next is 4
    assert partition.state.check(make_batch(7, 0, base_sequence, 1)) == OUT_OF_ORDER


def test_same_first_sequence_with_other_last_is_not_a_duplicate(partition: Partition) -> None:
    produce_run(partition, 7, 0, 2)  # 0-1, 2-3
    assert partition.state.check(make_batch(7, 0, 2, 1)) == OUT_OF_ORDER
    assert partition.state.check(make_batch(7, 0, 2, 3)) == OUT_OF_ORDER


def test_lower_epoch_is_invalid_producer_epoch(partition: Partition) -> None:
    partition.produce(make_batch(7, 3, 0, 2))
    assert partition.state.check(make_batch(7, 2, 2, 1)) == INVALID_EPOCH
    assert partition.state.check(make_batch(7, 2, 0, 2)) == INVALID_EPOCH  # even the same seqs


def test_higher_epoch_needs_sequence_zero(partition: Partition) -> None:
    produce_run(partition, 7, 0, 2)
    assert partition.state.check(make_batch(7, 1, 4, 1)) == OUT_OF_ORDER
    assert partition.state.check(make_batch(7, 1, 1, 1)) == OUT_OF_ORDER
    assert partition.state.check(make_batch(7, 1, 0, 1)) == ACCEPT


def test_epoch_bump_clears_the_cache(partition: Partition) -> None:
    produce_run(partition, 7, 0, 3)
    bumped = partition.produce(make_batch(7, 1, 0, 2))
    entry = partition.state.last_entry(7)
    assert entry is not None
    assert entry.producer_epoch == 1
    assert len(entry.batches) == 1
    assert partition.state.check(make_batch(7, 0, 0, 2)) == INVALID_EPOCH
    assert partition.state.check(make_batch(7, 1, 0, 2)) == as_duplicate(bumped)
    assert partition.state.check(make_batch(7, 1, 2, 1)) == ACCEPT


def test_producers_are_independent(partition: Partition) -> None:
    produce_run(partition, 7, 0, 2)
    assert partition.state.check(make_batch(8, 0, 100)) == ACCEPT
    partition.produce(make_batch(8, 5, 100))
    assert partition.state.check(make_batch(7, 0, 4)) == ACCEPT
    assert partition.state.check(make_batch(8, 5, 101)) == ACCEPT
    assert partition.state.check(make_batch(8, 5, 4)) == OUT_OF_ORDER


# -- duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize("age", range(5))
def test_duplicate_of_each_of_the_last_five_batches(partition: Partition, age: int) -> None:
    produce_run(partition, 9, 0, 3)  # another producer interleaves offsets
    placed = produce_run(partition, 7, 0, 7)
    original = placed[-1 - age]
    retry = make_batch(7, 0, original.base_sequence, 2)
    result = partition.state.check(retry)
    assert result == as_duplicate(original)
    assert isinstance(result, Duplicate)
    assert result.base_offset == original.base_offset


def test_duplicate_older_than_the_cache_is_out_of_order(partition: Partition) -> None:
    placed = produce_run(partition, 7, 0, 6)
    sixth_newest = placed[0]
    retry = make_batch(7, 0, sixth_newest.base_sequence, 2)
    assert partition.state.check(retry) == OUT_OF_ORDER


def test_duplicate_answer_carries_the_original_append_time(partition: Partition) -> None:
    partition.clock.advance(12_345)
    placed = partition.produce(make_batch(7, 0, 0, 4))
    partition.clock.advance(1_000)
    result = partition.state.check(make_batch(7, 0, 0, 4, timestamp=999))
    assert result == Duplicate(placed.base_offset, placed.last_offset, placed.max_timestamp)


# -- int32 wrap -----------------------------------------------------------------------------


def test_sequence_wraps_from_int32_max_to_zero(partition: Partition) -> None:
    partition.produce(make_batch(7, 0, INT32_MAX - 1, 2))  # ends at INT32_MAX
    assert partition.state.check(make_batch(7, 0, 0, 1)) == ACCEPT
    assert partition.state.check(make_batch(7, 0, INT32_MAX, 1)) == OUT_OF_ORDER
    assert partition.state.check(make_batch(7, 0, 1, 1)) == OUT_OF_ORDER


def test_batch_spanning_the_wrap(partition: Partition) -> None:
    placed = partition.produce(make_batch(7, 0, INT32_MAX - 1, 4))  # INT32_MAX-1 .. 1
    assert placed.last_sequence == 1
    assert partition.state.check(make_batch(7, 0, 2, 1)) == ACCEPT
    assert partition.state.check(make_batch(7, 0, INT32_MAX - 1, 4)) == as_duplicate(placed)


def test_wrapping_batch_survives_a_snapshot(partition: Partition) -> None:
    placed = partition.produce(make_batch(7, 0, INT32_MAX - 1, 4))
    partition.state.take_snapshot(partition.log.log_end_offset)
    partition.restart()
    assert partition.state.check(make_batch(7, 0, INT32_MAX - 1, 4)) == as_duplicate(placed)
    assert partition.state.check(make_batch(7, 0, 2, 1)) == ACCEPT


# -- update ---------------------------------------------------------------------------------


def test_update_keeps_the_last_five_batches(partition: Partition) -> None:
    placed = produce_run(partition, 7, 0, 8)
    entry = partition.state.last_entry(7)
    assert entry is not None
    assert [b.last_offset for b in entry.batches] == [p.last_offset for p in placed[-5:]]
    assert entry.last_sequence == 15
    assert entry.last_timestamp == placed[-1].max_timestamp
    newest = entry.batches[-1]
    assert (newest.first_sequence, newest.offset_delta, newest.first_offset) == (
        14,
        1,
        placed[-1].base_offset,
    )


def test_update_ignores_control_batches(partition: Partition) -> None:
    partition.state.update(make_batch(7, 0, -1, 1, attributes=CONTROL_MASK), 0)
    assert partition.state.last_entry(7) is None


# -- snapshots ------------------------------------------------------------------------------


def test_snapshot_file_layout(partition: Partition) -> None:
    partition.clock.advance(5)
    partition.produce(make_batch(7, 2, 0, 3))
    partition.state.take_snapshot(partition.log.log_end_offset)
    path = partition.directory / "00000000000000000003.snapshot"
    assert path == snapshot_path(partition.directory, 3)
    data = path.read_bytes()
    assert len(data) == 6 + 46
    version, _crc = struct.unpack_from(">hI", data)
    assert version == 1
    assert struct.unpack_from(">qhiqiqiq", data, 6) == (
        7,
        2,
        2,
        2,
        2,
        partition.clock.wall_ms(),
        -1,
        -1,
    )
    assert list(partition.directory.iterdir()) == [path]  # no temporary file left


def test_empty_snapshot_round_trip(partition: Partition) -> None:
    partition.state.take_snapshot(0, sync=True)
    partition.restart()
    assert partition.state.producer_ids == []
    assert partition.state.snapshot_offsets() == [0]


def test_snapshot_round_trip(partition: Partition) -> None:
    a = produce_run(partition, 7, 0, 3)
    b = partition.produce(make_batch(8, 4, 50, 5))
    partition.state.take_snapshot(partition.log.log_end_offset, sync=True)
    partition.restart()

    assert partition.state.producer_ids == [7, 8]
    for producer_id, newest, epoch in [(7, a[-1], 0), (8, b, 4)]:
        entry = partition.state.last_entry(producer_id)
        assert entry is not None
        assert entry.producer_epoch == epoch
        assert len(entry.batches) == 1  # only the newest batch is saved
        cached = entry.batches[0]
        assert (cached.first_sequence, cached.last_sequence) == (
            newest.base_sequence,
            newest.last_sequence,
        )
        assert (cached.first_offset, cached.last_offset) == (newest.base_offset, newest.last_offset)
        assert cached.timestamp == newest.max_timestamp
    assert partition.state.check(make_batch(7, 0, 4, 2)) == as_duplicate(a[-1])
    assert partition.state.check(make_batch(7, 0, 6, 1)) == ACCEPT
    assert partition.state.check(make_batch(8, 4, 50, 5)) == as_duplicate(b)
    assert partition.state.check(make_batch(8, 3, 55, 1)) == INVALID_EPOCH


def test_after_a_snapshot_older_retries_are_out_of_order(partition: Partition) -> None:
    placed = produce_run(partition, 7, 0, 3)
    partition.state.take_snapshot(partition.log.log_end_offset)
    partition.restart()
    assert partition.state.check(make_batch(7, 0, placed[0].base_sequence, 2)) == OUT_OF_ORDER


def test_load_replays_batches_after_the_snapshot(partition: Partition) -> None:
    produce_run(partition, 7, 0, 2)
    partition.state.take_snapshot(partition.log.log_end_offset)  # at 4, like a segment roll
    later = [partition.produce(make_batch(7, 0, 4 + 2 * i, 2)) for i in range(4)]
    other = partition.produce(make_batch(8, 0, 0, 1))
    partition.restart()  # a crash: no snapshot at the log end

    entry = partition.state.last_entry(7)
    assert entry is not None
    assert len(entry.batches) == 5
    assert entry.last_sequence == 11
    for placed in later:
        assert partition.state.check(make_batch(7, 0, placed.base_sequence, 2)) == as_duplicate(
            placed
        )
    assert partition.state.check(make_batch(8, 0, 0, 1)) == as_duplicate(other)
    assert partition.state.check(make_batch(7, 0, 12, 1)) == ACCEPT


def test_load_replays_from_the_log_start_without_a_snapshot(partition: Partition) -> None:
    placed = produce_run(partition, 7, 0, 6)
    partition.restart()  # even a clean stop without a snapshot replays (unlike Kafka)
    entry = partition.state.last_entry(7)
    assert entry is not None
    assert len(entry.batches) == 5
    assert partition.state.check(make_batch(7, 0, 10, 2)) == as_duplicate(placed[-1])
    assert partition.state.check(make_batch(7, 0, 12, 1)) == ACCEPT


def test_load_replays_only_up_to_the_log_end(partition: Partition) -> None:
    produce_run(partition, 7, 0, 3)  # offsets 0..5
    partition.state = ProducerStateManager(partition.directory, partition.clock)
    partition.state.load(0, 4, partition.log.batches_from)  # as if truncated at 4
    assert partition.state.check(make_batch(7, 0, 4, 1)) == ACCEPT


def test_corrupt_snapshot_is_ignored_and_an_older_one_used(partition: Partition) -> None:
    produce_run(partition, 7, 0, 2)
    partition.state.take_snapshot(partition.log.log_end_offset)  # at 4
    produce_run(partition, 8, 0, 2)
    partition.produce(make_batch(7, 0, 4, 1))
    partition.state.take_snapshot(partition.log.log_end_offset)  # at 9
    newest = snapshot_path(partition.directory, 9)
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF
    newest.write_bytes(bytes(data))

    partition.restart()

    assert partition.state.snapshot_offsets() == [4]  # the corrupt one is deleted
    assert partition.state.producer_ids == [7, 8]
    assert partition.state.check(make_batch(7, 0, 5, 1)) == ACCEPT
    assert partition.state.check(make_batch(8, 0, 4, 1)) == ACCEPT


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00", b"\x00\x02\x00\x00\x00\x00", b"\x00\x01\x00\x00\x00\x00\x01"],
    ids=["empty", "short-header", "version-2", "bad-crc"],
)
def test_unreadable_snapshot_falls_back_to_the_log(partition: Partition, content: bytes) -> None:
    placed = produce_run(partition, 7, 0, 2)
    snapshot_path(partition.directory, 4).write_bytes(content)
    partition.restart()
    assert partition.state.snapshot_offsets() == []
    assert partition.state.check(make_batch(7, 0, 2, 2)) == as_duplicate(placed[-1])


def test_snapshot_ending_inside_an_entry_is_corrupt(partition: Partition) -> None:
    from crc32c import crc32c

    body = b"\x00" * 45
    snapshot_path(partition.directory, 0).write_bytes(struct.pack(">hI", 1, crc32c(body)) + body)
    partition.restart()
    assert partition.state.snapshot_offsets() == []
    assert partition.state.producer_ids == []


def test_load_deletes_snapshots_out_of_range_and_leftovers(partition: Partition) -> None:
    produce_run(partition, 7, 0, 5)  # log end 10
    for offset in (2, 4, 8, 12):
        partition.state.take_snapshot(offset)
    leftover = partition.directory / "00000000000000000010.snapshot.tmp"
    leftover.write_bytes(b"torn")
    partition.restart(log_start_offset=4)
    assert partition.state.snapshot_offsets() == [4, 8]
    assert not leftover.exists()


def test_truncate_snapshots_below_keeps_state(partition: Partition) -> None:
    produce_run(partition, 7, 0, 5)
    for offset in (2, 4, 8):
        partition.state.take_snapshot(offset)
    partition.state.truncate_snapshots_below(5)
    assert partition.state.snapshot_offsets() == [8]
    assert partition.state.producer_ids == [7]


def test_snapshot_replaces_one_at_the_same_offset(partition: Partition) -> None:
    partition.state.take_snapshot(0)
    partition.produce(make_batch(7, 0, 0, 1))
    partition.state.take_snapshot(0)
    partition.state = ProducerStateManager(partition.directory, partition.clock)
    partition.state.load(0, 0, lambda _offset: [])
    assert partition.state.producer_ids == [7]


def test_names_that_are_not_snapshots_are_ignored(partition: Partition) -> None:
    (partition.directory / "00000000000000000000.log").write_bytes(b"")
    (partition.directory / "1.snapshot").write_bytes(b"")
    partition.state.take_snapshot(0)
    assert partition.state.snapshot_offsets() == [0]


# -- expiry ---------------------------------------------------------------------------------


def test_idle_producers_expire(tmp_path: Path) -> None:
    clock = FakeClock()
    partition = Partition(tmp_path, clock)
    partition.produce(make_batch(7, 0, 0, 1))
    clock.advance(DAY_MS // 2)
    partition.produce(make_batch(8, 0, 0, 1))
    clock.advance(DAY_MS // 2 - 1)
    assert partition.state.remove_expired() == 0
    clock.advance(1)
    assert partition.state.remove_expired() == 1
    assert partition.state.producer_ids == [8]
    assert partition.state.check(make_batch(7, 0, 42, 1)) == ACCEPT  # unknown again
    clock.advance(DAY_MS)
    assert partition.state.remove_expired() == 1
    assert partition.state.producer_ids == []


def test_activity_postpones_expiry(tmp_path: Path) -> None:
    clock = FakeClock()
    partition = Partition(tmp_path, clock)
    partition.state = ProducerStateManager(tmp_path, clock, producer_id_expiration_ms=1_000)
    partition.produce(make_batch(7, 0, 0, 1))
    clock.advance(900)
    partition.produce(make_batch(7, 0, 1, 1))
    clock.advance(900)
    assert partition.state.remove_expired() == 0
    clock.advance(100)
    assert partition.state.remove_expired() == 1


# -- property: a model client against the manager, with restarts ----------------------------


@dataclasses.dataclass
class ModelProducer:
    epoch: int
    next_sequence: int
    sent: list[BatchHeader]  # as placed in the log, every epoch


def expected_cache(batches: list[BatchHeader]) -> list[BatchHeader]:
    """What the manager should remember after seeing `batches` of one producer, in order."""
    if not batches:
        return []
    epoch = batches[-1].producer_epoch
    run: list[BatchHeader] = []
    for batch in reversed(batches):
        if batch.producer_epoch != epoch or len(run) == 5:
            break
        run.append(batch)
    return run[::-1]


class ProducerStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="producer-state-"))
        self.partition = Partition(self.directory)
        self.producers: dict[int, ModelProducer] = {}
        self.cache: dict[int, list[BatchHeader]] = {}
        self.good_snapshots: set[int] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _next(self, sequence: int, count: int) -> int:
        return (sequence + count) % (INT32_MAX + 1)

    @rule(
        producer_id=st.integers(1, 2),
        counts=st.lists(st.integers(1, 4), min_size=1, max_size=4),
        first_sequence=st.sampled_from([0, 1, INT32_MAX - 2]),
    )
    def send_in_order(self, producer_id: int, counts: list[int], first_sequence: int) -> None:
        model = self.producers.get(producer_id)
        if model is None:
            model = ModelProducer(0, first_sequence, [])
            self.producers[producer_id] = model
        for count in counts:
            batch = make_batch(producer_id, model.epoch, model.next_sequence, count)
            assert self.partition.state.check(batch) == ACCEPT
            placed = self.partition.log.append(batch, self.partition.clock.wall_ms())
            self.partition.state.update(placed, self.partition.clock.wall_ms())
            model.sent.append(placed)
            model.next_sequence = self._next(model.next_sequence, count)
            self.cache[producer_id] = expected_cache([*self.cache.get(producer_id, []), placed])

    @rule(producer_id=st.integers(1, 2), age=st.integers(0, 7))
    def retry(self, producer_id: int, age: int) -> None:
        """Resend one of the producer's recent batches: around the cache's edge of 5."""
        model = self.producers.get(producer_id)
        if model is None or not model.sent:
            return
        original = model.sent[-1 - age % len(model.sent)]
        retry = make_batch(
            producer_id, original.producer_epoch, original.base_sequence, original.records_count
        )
        result = self.partition.state.check(retry)
        event(f"retry answered {type(result).__name__}")
        if original.producer_epoch < model.sent[-1].producer_epoch:
            assert result == INVALID_EPOCH
        elif original in self.cache[producer_id]:
            assert result == as_duplicate(original)
        else:
            assert result == OUT_OF_ORDER

    @rule(producer_id=st.integers(1, 2), gap=st.integers(1, 3))
    def send_with_gap(self, producer_id: int, gap: int) -> None:
        model = self.producers.get(producer_id)
        if model is None or not model.sent:
            return
        last = model.sent[-1]
        batch = make_batch(
            producer_id, last.producer_epoch, self._next(last.last_sequence, 1 + gap), 1
        )
        assert self.partition.state.check(batch) == OUT_OF_ORDER

    @rule(producer_id=st.integers(1, 2))
    def bump_epoch(self, producer_id: int) -> None:
        model = self.producers.get(producer_id)
        if model is None or not model.sent:
            return
        model.epoch += 1
        model.next_sequence = 0

    @rule()
    def roll(self) -> None:
        offset = self.partition.log.log_end_offset
        self.partition.state.take_snapshot(offset)
        self.good_snapshots.add(offset)

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        log = self.partition.log
        if clean:
            self.partition.state.take_snapshot(log.log_end_offset)
            self.good_snapshots.add(log.log_end_offset)
        self.partition.restart()
        start = max(self.good_snapshots, default=0)
        for producer_id in self.producers:
            mine = [b for b in log.batches if b.producer_id == producer_id]
            before = [b for b in mine if b.last_offset < start][-1:]
            self.cache[producer_id] = expected_cache(
                before + [b for b in mine if b.base_offset >= start]
            )

    @rule()
    def corrupt_newest_snapshot(self) -> None:
        if not self.good_snapshots:
            return
        newest = max(self.good_snapshots)
        path = snapshot_path(self.directory, newest)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # the CRC's last byte when there are no entries, else the body's
        path.write_bytes(bytes(data))
        self.good_snapshots.discard(newest)

    @rule(ms=st.integers(0, 1_000))
    def advance(self, ms: int) -> None:
        self.partition.clock.advance(ms)

    @invariant()
    def knows_every_producer_that_wrote(self) -> None:
        assert self.partition.state.producer_ids == sorted(self.producers)


ProducerStateMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_producer_state_machine = ProducerStateMachine.TestCase
