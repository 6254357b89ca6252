"""Idempotent-producer state of one partition, and its snapshot files.

A snapshot `<20-digit offset>.snapshot` holds the state of every producer as of that offset:
all batches below the offset are in it, none at or above. Big-endian throughout:

    offset  size  field
    0       2     version (= 1)
    2       4     crc            uint32 CRC-32C of bytes 6..end
    6       46    entry 0
    52      46    entry 1
    ...           (as many entries as the file holds: (size - 6) / 46)

    one entry, the newest batch of one producer:
    0       8     producer_id
    8       2     producer_epoch
    10      4     last_sequence
    14      8     last_offset
    22      4     offset_delta        last_offset - first offset (= last seq - first seq)
    26      8     timestamp           the batch's timestamp, also the producer's last timestamp
    34      4     coordinator_epoch   always -1: no transactions yet
    38      8     txn_first_offset    always -1: no transactions yet

The rules follow Kafka >= 2.5 (ProducerStateManager, ProducerAppendInfo): see
notes/groups-and-idempotence.md section 4.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from crc32c import crc32c
from kio.schema.errors import ErrorCode

from millpond.clock import Clock
from millpond.protocol.records import BatchHeader
from millpond.storage.files import atomic_write
from millpond.storage.files import read_file
from millpond.storage.fs import REAL_FILE_SYSTEM
from millpond.storage.fs import FileSystem

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1
MAX_CACHED_BATCHES = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN
INT32_MAX = 0x7FFFFFFF
NO_COORDINATOR_EPOCH = -1
NO_TXN_FIRST_OFFSET = -1

_SNAPSHOT_HEADER = struct.Struct(">hI")
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_OFFSET_DIGITS = 20


@dataclass(frozen=True, slots=True)
class Accept:
    """The batch is new and in sequence (or carries no producer id): append it."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A retry of a batch already in the log: append nothing, answer NONE with these."""

    base_offset: int
    last_offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the batch with this error code."""

    error_code: ErrorCode


SequenceCheck = Accept | Duplicate | Reject

ACCEPT = Accept()


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """What is remembered of one appended batch (Kafka's BatchMetadata)."""

    first_sequence: int
    last_sequence: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@dataclass(slots=True)
class ProducerStateEntry:
    """One producer's epoch and its newest batches, oldest first (never empty once stored)."""

    producer_id: int
    producer_epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))

    @property
    def last_sequence(self) -> int:
        return self.batches[-1].last_sequence

    @property
    def last_timestamp(self) -> int:
        return self.batches[-1].timestamp

    def find_duplicate(self, batch: BatchHeader) -> BatchMetadata | None:
        if batch.producer_epoch != self.producer_epoch:
            return None
        first, last = batch.base_sequence, batch.last_sequence
        for cached in self.batches:
            if cached.first_sequence == first and cached.last_sequence == last:
                return cached
        return None


class CorruptSnapshotError(ValueError):
    """A snapshot file is truncated, has the wrong version or fails its CRC."""


def snapshot_path(directory: Path, offset: int) -> Path:
    """`<directory>/<20-digit offset>.snapshot`."""
    return directory / f"{offset:0{_OFFSET_DIGITS}d}{SNAPSHOT_SUFFIX}"


def _next_sequence(sequence: int) -> int:
    # Sequences wrap from int32 max to 0, as Kafka's DefaultRecordBatch.incrementSequence.
    return 0 if sequence == INT32_MAX else sequence + 1


def _first_sequence(last_sequence: int, delta: int) -> int:
    return (last_sequence - delta) % (INT32_MAX + 1)


class ProducerStateManager:
    """Per-partition producer state: sequence checks before an append, updates after it.

    Pure apart from the snapshot files in `directory` (the partition directory), which it
    reads and writes through `fs`.
    """

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        producer_id_expiration_ms: int = 86_400_000,
        fs: FileSystem = REAL_FILE_SYSTEM,
    ) -> None:
        self._directory = directory
        self._fs = fs
        self._clock = clock
        self._producer_id_expiration_ms = producer_id_expiration_ms
        self._producers: dict[int, ProducerStateEntry] = {}

    # -- the produce path ------------------------------------------------------------------

    def check(self, batch: BatchHeader) -> SequenceCheck:
        """Decide what to do with `batch` before it is appended.

        Returns ACCEPT for a batch with no producer id, from an unknown producer, or next in
        sequence; Duplicate(...) for a retry of one of the producer's last 5 batches;
        Reject(INVALID_PRODUCER_EPOCH) for an older epoch; Reject(OUT_OF_ORDER_SEQUENCE_NUMBER)
        for anything else.
        """
        if not batch.has_producer_id:
            return ACCEPT
        entry = self._producers.get(batch.producer_id)
        if entry is None:
            # Kafka >= 2.5 (KAFKA-8710): state may have been lost to retention or expiry, so
            # any sequence is accepted from a producer we do not know.
            return ACCEPT
        if batch.producer_epoch < entry.producer_epoch:
            return Reject(ErrorCode.invalid_producer_epoch)
        if batch.producer_epoch > entry.producer_epoch:
            if batch.base_sequence != 0:
                return Reject(ErrorCode.out_of_order_sequence_number)
            return ACCEPT
        duplicate = entry.find_duplicate(batch)
        if duplicate is not None:
            return Duplicate(duplicate.first_offset, duplicate.last_offset, duplicate.timestamp)
        if batch.base_sequence == _next_sequence(entry.last_sequence):
            return ACCEPT
        return Reject(ErrorCode.out_of_order_sequence_number)

    def update(self, batch: BatchHeader, append_time_ms: int) -> None:
        """Record `batch`, just appended at `batch.base_offset`, stamped `append_time_ms`.

        Unchecked, so replaying the log never fails: a batch whose epoch differs from the
        stored one (normally a bump) clears the cache and sets the epoch, as Kafka does for
        replicated and recovered batches. Batches without a producer id and control batches
        are ignored.
        """
        if not batch.has_producer_id or batch.is_control:
            return
        entry = self._producers.get(batch.producer_id)
        if entry is None:
            entry = ProducerStateEntry(batch.producer_id, batch.producer_epoch)
            self._producers[batch.producer_id] = entry
        elif entry.producer_epoch != batch.producer_epoch:
            entry.producer_epoch = batch.producer_epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                first_sequence=batch.base_sequence,
                last_sequence=batch.last_sequence,
                last_offset=batch.last_offset,
                offset_delta=batch.last_offset_delta,
                timestamp=append_time_ms,
            )
        )

    def remove_expired(self) -> int:
        """Forget producers idle for `producer_id_expiration_ms` or longer; return how many."""
        now = self._clock.wall_ms()
        expired = [
            producer_id
            for producer_id, entry in self._producers.items()
            if now - entry.last_timestamp >= self._producer_id_expiration_ms
        ]
        for producer_id in expired:
            del self._producers[producer_id]
        return len(expired)

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        """The live state of one producer, or None if unknown. For inspection: do not mutate."""
        return self._producers.get(producer_id)

    @property
    def producer_ids(self) -> list[int]:
        return sorted(self._producers)

    # -- snapshots and recovery ------------------------------------------------------------

    def take_snapshot(self, log_end_offset: int, *, sync: bool = False) -> None:
        """Write the current state as `<log_end_offset>.snapshot`, replacing any such file.

        Written to a temporary file and renamed, so a reader sees the old file or the new one.
        With `sync`, the file and the directory are fsynced too; without it a crash may leave
        a torn file, which `load` detects by its CRC and skips.
        """
        entries = []
        for entry in self._producers.values():
            newest = entry.batches[-1]
            entries.append(
                _SNAPSHOT_ENTRY.pack(
                    entry.producer_id,
                    entry.producer_epoch,
                    newest.last_sequence,
                    newest.last_offset,
                    newest.offset_delta,
                    newest.timestamp,
                    NO_COORDINATOR_EPOCH,
                    NO_TXN_FIRST_OFFSET,
                )
            )
        body = b"".join(entries)
        data = _SNAPSHOT_HEADER.pack(SNAPSHOT_VERSION, crc32c(body)) + body
        atomic_write(snapshot_path(self._directory, log_end_offset), data, sync=sync, fs=self._fs)

    def _names(self) -> list[str]:
        """The names in the directory (none if it does not exist yet, as a glob would say)."""
        try:
            return self._fs.listdir(self._directory)
        except FileNotFoundError:
            return []

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files in the directory, ascending."""
        offsets = []
        for name in self._names():
            if not name.endswith(SNAPSHOT_SUFFIX):
                continue
            stem = name.removesuffix(SNAPSHOT_SUFFIX)
            if len(stem) == _OFFSET_DIGITS and stem.isdigit():
                offsets.append(int(stem))
        return sorted(offsets)

    def truncate_snapshots_below(self, log_start_offset: int) -> None:
        """Delete snapshots below `log_start_offset` (retention or DeleteRecords moved it).

        The in-memory state is kept: producers are forgotten only by expiry (Kafka >= 2.5).
        """
        for offset in self.snapshot_offsets():
            if offset < log_start_offset:
                self._fs.unlink(snapshot_path(self._directory, offset), missing_ok=True)

    def load(
        self,
        log_start_offset: int,
        log_end_offset: int,
        batches_from: Callable[[int], Iterable[BatchHeader]],
    ) -> None:
        """Rebuild the state from the newest usable snapshot plus the log after it.

        Deletes snapshots above `log_end_offset` or below `log_start_offset`, leftover
        temporary files, and any snapshot that fails to decode (falling back to an older
        one). Then replays, with `batches_from(offset)`, every batch from the snapshot's offset
        (or `log_start_offset` without one) up to `log_end_offset`. Unlike Kafka, the replay
        always happens, even with no snapshot after a clean stop, so state is never lost.
        Replayed batches keep their `max_timestamp` as their timestamp.
        """
        self._producers.clear()
        for name in self._names():
            if name.endswith(SNAPSHOT_SUFFIX + ".tmp"):
                self._fs.unlink(self._directory / name, missing_ok=True)
        offsets = self.snapshot_offsets()
        for offset in offsets:
            if offset > log_end_offset or offset < log_start_offset:
                self._fs.unlink(snapshot_path(self._directory, offset), missing_ok=True)
        usable = [o for o in offsets if log_start_offset <= o <= log_end_offset]

        replay_from = log_start_offset
        for offset in reversed(usable):
            path = snapshot_path(self._directory, offset)
            try:
                self._producers = _read_snapshot(path, self._fs)
            except CorruptSnapshotError:
                self._fs.unlink(path, missing_ok=True)
                continue
            replay_from = offset
            break

        for batch in batches_from(replay_from):
            if batch.base_offset >= log_end_offset:
                break
            if batch.last_offset < replay_from:
                continue
            self.update(batch, batch.max_timestamp)


def _read_snapshot(path: Path, fs: FileSystem) -> dict[int, ProducerStateEntry]:
    """Decode one snapshot file. Raises CorruptSnapshotError if it cannot be trusted."""
    try:
        data = read_file(path, fs)
    except OSError as error:
        raise CorruptSnapshotError(f"cannot read producer snapshot {path}: {error}") from error
    if len(data) < _SNAPSHOT_HEADER.size:
        raise CorruptSnapshotError(f"producer snapshot {path} is shorter than its header")
    version, crc = _SNAPSHOT_HEADER.unpack_from(data)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"producer snapshot {path} has unknown version {version}")
    body = memoryview(data)[_SNAPSHOT_HEADER.size :]
    if crc32c(body) != crc:
        raise CorruptSnapshotError(f"producer snapshot {path} fails its CRC-32C")
    if len(body) % _SNAPSHOT_ENTRY.size:
        raise CorruptSnapshotError(f"producer snapshot {path} ends inside an entry")
    producers: dict[int, ProducerStateEntry] = {}
    for fields in _SNAPSHOT_ENTRY.iter_unpack(body):
        producer_id, epoch, last_seq, last_offset, delta, timestamp, _, _ = fields
        entry = ProducerStateEntry(producer_id, epoch)
        entry.batches.append(
            BatchMetadata(_first_sequence(last_seq, delta), last_seq, last_offset, delta, timestamp)
        )
        producers[producer_id] = entry
    return producers
