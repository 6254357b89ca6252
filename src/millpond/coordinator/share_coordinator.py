"""Share groups on this broker: membership, sessions, per-partition record state, durability
in `__share_group_state`, dead letters and delayed delivery. The handlers call in here; the
state machines it drives are pure (share_group.py, share_sessions.py, share_partition.py).

Every change that must survive a crash (acknowledgements, releases, lock expiries, a partition's
first start offset, offset resets, group configs) is written to `__share_group_state` and
fsynced before the request that caused it is answered. A record that is dead-lettered is copied
to the dead-letter topic and fsynced before its archived state is written, so a crash in between
can copy it twice but never lose it.

Delayed delivery: a record carrying header `millpond.deliver.after.ms` (epoch ms, decimal) or
sitting in a topic with `millpond.delivery.delay.ms` is taken into a group's window but left
available, not acquired, until its time. Consumer groups read it at once, as a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.clock import Clock
from millpond.config import GROUP_KEYS
from millpond.config import BrokerConfig
from millpond.config import iso_duration_ms
from millpond.config import validate_group_configs
from millpond.coordinator.internal_log import append_durably
from millpond.coordinator.internal_log import read_records
from millpond.coordinator.share_group import HeartbeatResult
from millpond.coordinator.share_group import ShareGroup
from millpond.coordinator.share_partition import Acknowledgement
from millpond.coordinator.share_partition import AcquiredRange
from millpond.coordinator.share_partition import DeadLetter
from millpond.coordinator.share_partition import InvalidRecordState
from millpond.coordinator.share_partition import RecordState
from millpond.coordinator.share_partition import SharePartition
from millpond.coordinator.share_partition import SharePartitionLimits
from millpond.coordinator.share_sessions import ShareSessionCache
from millpond.coordinator.share_state_topic import STATE_TOPIC
from millpond.coordinator.share_state_topic import GroupConfigKey
from millpond.coordinator.share_state_topic import PartitionKey
from millpond.coordinator.share_state_topic import PartitionSnapshot
from millpond.coordinator.share_state_topic import StateFormatError
from millpond.coordinator.share_state_topic import decode_group_configs
from millpond.coordinator.share_state_topic import decode_key
from millpond.coordinator.share_state_topic import decode_snapshot
from millpond.coordinator.share_state_topic import encode_group_configs
from millpond.coordinator.share_state_topic import encode_key
from millpond.coordinator.share_state_topic import encode_snapshot
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import BatchHeader
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import iter_batches
from millpond.storage.log import Log
from millpond.storage.log_manager import LogManager
from millpond.storage.log_manager import Topic

logger = logging.getLogger(__name__)

DELIVER_AFTER_HEADER = "millpond.deliver.after.ms"
_DELIVER_AFTER_BYTES = DELIVER_AFTER_HEADER.encode()
DEAD_LETTER_PREFIX = "dlq."
_READ_CHUNK = 1 << 20
_STATE_SEGMENT_BYTES = 100 * 1024 * 1024
_COMPRESSION_MASK = 0x07

StateKey = tuple[str, uuid.UUID, int]  # (group, topic id, partition)


@dataclass(frozen=True, slots=True)
class GroupSettings:
    lock_duration_ms: int
    delivery_count_limit: int
    max_in_flight: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    auto_offset_reset: str
    dead_letter_topic: str | None

    @property
    def limits(self) -> SharePartitionLimits:
        return SharePartitionLimits(
            self.lock_duration_ms, self.delivery_count_limit, self.max_in_flight
        )


@dataclass(slots=True)
class Acquired:
    records: list[memoryview]
    ranges: list[AcquiredRange]
    size: int


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    """What describe, the CLI and /metrics show of one share partition."""

    group_id: str
    topic: str
    partition: int
    start_offset: int
    lag: int
    in_flight: int
    available: int
    archived_total: int
    oldest_available_timestamp: int | None


class ShareCoordinator:
    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock,
        logs: LogManager,
        group_commit: GroupCommit,
        appended: AppendSignal,
        is_classic_group: Callable[[str], bool],
    ) -> None:
        self.config = config
        self.clock = clock
        self.logs = logs
        self.group_commit = group_commit
        self.appended = appended
        self.is_classic_group = is_classic_group
        self.groups: dict[str, ShareGroup] = {}
        self.group_configs: dict[str, dict[str, str]] = {}
        self.partitions: dict[StateKey, SharePartition] = {}
        self.sessions = ShareSessionCache(config["group.share.max.share.sessions"])
        self.dead_lettered_total = 0
        self._settings: dict[str, GroupSettings] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- start-up --------------------------------------------------------------------------------

    def _state_log(self) -> Log:
        topic = self.logs.topics.get(STATE_TOPIC)
        if topic is None:
            topic = self.logs.create_topic(
                STATE_TOPIC,
                1,
                {"cleanup.policy": "compact", "segment.bytes": str(_STATE_SEGMENT_BYTES)},
            )
        return topic.partitions[0].log

    def load(self) -> int:
        """Replay `__share_group_state`; returns how many records were read."""
        log = self._state_log()
        snapshots: dict[StateKey, PartitionSnapshot] = {}
        replayed = 0
        for record in read_records(log, STATE_TOPIC):
            replayed += 1
            if record.key is None:
                continue
            try:
                key = decode_key(record.key)
                if isinstance(key, GroupConfigKey):
                    if record.value is None:
                        self.group_configs.pop(key.group_id, None)
                    else:
                        self.group_configs[key.group_id] = decode_group_configs(record.value)
                    continue
                state_key = (key.group_id, key.topic_id, key.partition)
                if record.value is None:
                    snapshots.pop(state_key, None)
                else:
                    snapshots[state_key] = decode_snapshot(record.value)
            except (StateFormatError, UnicodeDecodeError) as error:
                logger.warning("skipping unreadable %s record: %s", STATE_TOPIC, error)
        for (group_id, topic_id, index), snapshot in snapshots.items():
            if topic_id not in self.logs.topics_by_id:
                continue  # the topic was deleted
            limits = self.settings(group_id).limits
            partition = SharePartition.restore(snapshot.start_offset, snapshot.batches, limits)
            partition.state_epoch = snapshot.state_epoch
            self.partitions[(group_id, topic_id, index)] = partition
        for group_id in {key[0] for key in self.partitions} | set(self.group_configs):
            self.groups.setdefault(group_id, ShareGroup(group_id))
        return replayed

    # -- configuration ---------------------------------------------------------------------------

    def settings(self, group_id: str) -> GroupSettings:
        """The group's effective settings (cached: every ShareFetch asks)."""
        cached = self._settings.get(group_id)
        if cached is None:
            cached = self._settings[group_id] = self._resolve_settings(group_id)
        return cached

    def _resolve_settings(self, group_id: str) -> GroupSettings:
        overrides = validate_group_configs(self.group_configs.get(group_id, {}))

        def value(name: str) -> Any:
            if name in overrides:
                return overrides[name]
            key = GROUP_KEYS[name]
            if key.broker_default is not None:
                return self.config[key.broker_default]
            return key.parse_value(key.default) if key.default else key.default

        dead_letter = self.group_configs.get(group_id, {}).get("errors.deadletterqueue.topic.name")
        return GroupSettings(
            lock_duration_ms=value("share.record.lock.duration.ms"),
            delivery_count_limit=value("share.delivery.count.limit"),
            max_in_flight=value("share.partition.max.record.locks"),
            session_timeout_ms=value("share.session.timeout.ms"),
            heartbeat_interval_ms=value("share.heartbeat.interval.ms"),
            auto_offset_reset=value("share.auto.offset.reset"),
            dead_letter_topic=(
                DEAD_LETTER_PREFIX + group_id if dead_letter is None else dead_letter or None
            ),
        )

    async def alter_configs(self, group_id: str, changes: dict[str, str | None]) -> None:
        """Set (value) or remove (None) group configs; raises ConfigError naming a bad one."""
        configs = dict(self.group_configs.get(group_id, {}))
        for name, value in changes.items():
            if value is None:
                configs.pop(name, None)
            else:
                configs[name] = value
        validate_group_configs(configs)
        await self._append([(encode_key(GroupConfigKey(group_id)), encode_group_configs(configs))])
        self.group_configs[group_id] = configs
        self._settings.pop(group_id, None)
        self.groups.setdefault(group_id, ShareGroup(group_id))
        limits = self.settings(group_id).limits
        for key, partition in self.partitions.items():
            if key[0] == group_id:
                partition.limits = limits

    # -- membership ------------------------------------------------------------------------------

    def _lookup(self, topic: str) -> tuple[uuid.UUID, int] | None:
        found = self.logs.topics.get(topic)
        if found is None or found.internal:
            return None
        return found.topic_id, len(found.partitions)

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        rack_id: str | None,
        topics: list[str] | None,
        client_id: str,
        client_host: str,
    ) -> tuple[HeartbeatResult, int]:
        """(result, heartbeat interval ms)."""
        settings = self.settings(group_id) if group_id else None
        interval = settings.heartbeat_interval_ms if settings else 0
        if not group_id or not member_id.strip():
            message = "the group id and the member id must not be empty"
            return HeartbeatResult(ErrorCode.invalid_request, 0, message=message), interval
        if rack_id == "":
            message = "the rack id must not be empty"
            return HeartbeatResult(ErrorCode.invalid_request, 0, message=message), interval
        assert settings is not None
        if self.is_classic_group(group_id):
            message = f"group {group_id} is a consumer group, not a share group"
            return HeartbeatResult(ErrorCode.group_id_not_found, 0, message=message), interval
        group = self.groups.get(group_id)
        if member_epoch == -1:
            if group is not None and group.remove(member_id, self._lookup):
                self._release_member_soon(group_id, member_id, count_delivery=False)
            return HeartbeatResult(ErrorCode.none, -1), interval
        if group is None:
            if member_epoch != 0:
                # Forgotten (or never known): make the member rejoin rather than give up.
                message = f"member {member_id} is not in group {group_id}"
                return HeartbeatResult(ErrorCode.unknown_member_id, 0, message=message), interval
            group = self.groups[group_id] = ShareGroup(group_id)
        if (
            member_epoch == 0
            and member_id not in group.members
            and len(group.members) >= self.config["group.share.max.size"]
        ):
            message = f"group {group_id} already has {len(group.members)} members"
            return HeartbeatResult(ErrorCode.group_max_size_reached, 0, message=message), interval
        result = group.heartbeat(
            member_id,
            member_epoch,
            rack_id,
            topics,
            client_id,
            client_host,
            self.clock.monotonic_ms(),
            settings.session_timeout_ms,
            self._lookup,
        )
        return result, interval

    # -- records ---------------------------------------------------------------------------------

    def topic_by_id(self, topic_id: uuid.UUID | None) -> Topic | None:
        return None if topic_id is None else self.logs.topics_by_id.get(topic_id)

    async def share_partition(self, group_id: str, topic: Topic, index: int) -> SharePartition:
        """The group's state on the partition, starting it (durably) on first use."""
        key = (group_id, topic.topic_id, index)
        partition = self.partitions.get(key)
        if partition is not None:
            return partition
        settings = self.settings(group_id)
        log = topic.partitions[index].log
        start = self._initial_offset(log, settings.auto_offset_reset)
        partition = SharePartition(start, settings.limits)
        self.partitions[key] = partition
        self.groups.setdefault(group_id, ShareGroup(group_id))
        await self._persist([key])
        return partition

    def _initial_offset(self, log: Log, reset: str) -> int:
        if reset == "earliest":
            return log.log_start_offset
        if reset.startswith("by_duration:"):
            since = self.clock.wall_ms() - iso_duration_ms(reset[len("by_duration:") :])
            found = log.offset_for_timestamp(since)
            return log.log_end_offset if found is None else found[0]
        return log.log_end_offset

    def acquire(
        self,
        group_id: str,
        member_id: str,
        topic: Topic,
        index: int,
        partition: SharePartition,
        max_records: int,
        max_bytes: int,
    ) -> Acquired:
        """Acquire up to about `max_records` records (whole stored batches) for the member."""
        log = topic.partitions[index].log
        result = Acquired([], [], 0)
        partition.move_start(log.log_start_offset)
        now, now_wall = self.clock.monotonic_ms(), self.clock.wall_ms()
        delay = topic.config.delivery_delay_ms
        offset = partition.next_candidate(partition.start_offset, now_wall)
        acquired = 0
        while offset is not None and offset < log.log_end_offset:
            data = log.read(offset, max(min(max_bytes - result.size, _READ_CHUNK), 1))
            if not data:
                break
            view = memoryview(data)
            read_from = offset
            for header in iter_batches(data, verify_crc=False):
                if offset is None or header.last_offset < offset:
                    continue
                if header.base_offset > offset:
                    partition.skip_missing(offset, header.base_offset)
                deliver_after = _deliver_after(data, header, delay)
                ranges = partition.acquire_range(
                    max(offset, header.base_offset),
                    header.last_offset,
                    member_id,
                    now,
                    now_wall,
                    deliver_after,
                    limit=max_records - acquired,
                )
                if ranges:
                    result.records.append(view[header.position : header.position + header.size])
                    result.size += header.size
                    result.ranges.extend(ranges)
                    acquired += sum(r.last_offset - r.first_offset + 1 for r in ranges)
                offset = partition.next_candidate(header.next_offset, now_wall)
                if acquired >= max_records or result.size >= max_bytes:
                    return result
            if offset is None or offset <= read_from:
                break
        return result

    def next_delivery_wall_ms(
        self, group_id: str, keys: Iterable[tuple[uuid.UUID, int]]
    ) -> int | None:
        """When the earliest delayed record of these partitions of the group becomes
        deliverable (for a parked fetch on them)."""
        now_wall = self.clock.wall_ms()
        earliest = None
        for topic_id, index in keys:
            partition = self.partitions.get((group_id, topic_id, index))
            if partition is None:
                continue
            for record in partition.records.values():
                if (
                    record.state is RecordState.AVAILABLE
                    and record.deliver_after_ms > now_wall
                    and (earliest is None or record.deliver_after_ms < earliest)
                ):
                    earliest = record.deliver_after_ms
        return earliest

    async def acknowledge(
        self, group_id: str, member_id: str, topic: Topic, index: int, acks: list[Acknowledgement]
    ) -> tuple[ErrorCode, str | None]:
        key = (group_id, topic.topic_id, index)
        partition = self.partitions.get(key)
        if partition is None:
            return ErrorCode.invalid_record_state, "no records of this partition are acquired"
        try:
            dead = partition.acknowledge(member_id, acks, self.clock.monotonic_ms())
        except InvalidRecordState as error:
            return ErrorCode.invalid_record_state, str(error)
        try:
            await self._settle(key, dead)
        except OSError as error:
            return ErrorCode.kafka_storage_error, str(error)
        self.appended.notify((topic.name, index))
        return ErrorCode.none, None

    async def release_member(self, group_id: str, member_id: str, *, count_delivery: bool) -> None:
        """Give back everything the member holds, on every partition of the group."""
        for key, partition in list(self.partitions.items()):
            if key[0] != group_id:
                continue
            changed, dead = partition.release_member(member_id, count_delivery=count_delivery)
            if changed:
                await self._settle(key, dead)
                topic = self.logs.topics_by_id.get(key[1])
                if topic is not None:
                    self.appended.notify((topic.name, key[2]))

    def _release_member_soon(self, group_id: str, member_id: str, *, count_delivery: bool) -> None:
        self._spawn(
            self.release_member(group_id, member_id, count_delivery=count_delivery),
            f"releasing the records of member {member_id} of group {group_id}",
        )

    def connection_closed(self, connection_id: int) -> None:
        """A dropped connection ends its sessions; what those members held goes back, and the
        delivery counts (the worker may have died on a record)."""
        for session in self.sessions.close_connection(connection_id):
            self._release_member_soon(session.group_id, session.member_id, count_delivery=True)

    async def tick(self) -> None:
        """Expire members and record locks (run every 100 ms)."""
        now = self.clock.monotonic_ms()
        for group in list(self.groups.values()):
            for member_id in group.expired(now):
                logger.info("share group %s: member %s timed out", group.group_id, member_id)
                group.remove(member_id, self._lookup)
                self.sessions.close(group.group_id, member_id)
                self._release_member_soon(group.group_id, member_id, count_delivery=True)
        settles = []
        for key, partition in list(self.partitions.items()):
            deadline = partition.next_lock_deadline()
            if deadline is None or deadline > now:
                continue
            changed, dead = partition.expire_locks(now)
            if changed:
                settles.append(self._settle(key, dead))
                topic = self.logs.topics_by_id.get(key[1])
                if topic is not None:
                    self.appended.notify((topic.name, key[2]))
        if settles:
            results = await asyncio.gather(*settles, return_exceptions=True)
            for outcome in results:
                if isinstance(outcome, BaseException):
                    logger.error("persisting expired share locks failed: %s", outcome)

    # -- durability and dead letters -------------------------------------------------------------

    async def _settle(self, key: StateKey, dead: list[DeadLetter]) -> None:
        if dead:
            await self._dead_letter(key, dead)
        await self._persist([key])

    async def _persist(self, keys: Iterable[StateKey]) -> None:
        entries: list[tuple[bytes, bytes | None]] = []
        for key in keys:
            partition = self.partitions.get(key)
            state_key = encode_key(PartitionKey(*key))
            if partition is None:
                entries.append((state_key, None))
                continue
            snapshot = PartitionSnapshot(
                partition.state_epoch, partition.start_offset, tuple(partition.state_batches())
            )
            entries.append((state_key, encode_snapshot(snapshot)))
        await self._append(entries)

    async def _append(self, entries: list[tuple[bytes, bytes | None]]) -> None:
        if not entries:
            return
        now_wall = self.clock.wall_ms()
        await append_durably(
            self._state_log(),
            [NewRecord(key, value, now_wall) for key, value in entries],
            self.group_commit,
            self.appended,
            (STATE_TOPIC, 0),
        )

    async def _dead_letter(self, key: StateKey, dead: list[DeadLetter]) -> None:
        group_id, topic_id, index = key
        target = self.settings(group_id).dead_letter_topic
        source = self.logs.topics_by_id.get(topic_id)
        if target is None or source is None:
            return
        if target == source.name:
            logger.warning("group %s: not dead-lettering %s into itself", group_id, source.name)
            return
        wanted = {letter.offset: letter for letter in dead}
        originals = _read_records(source.partitions[index].log, sorted(wanted))
        now_wall = self.clock.wall_ms()
        letters = []
        for offset, record in originals:
            letter = wanted[offset]
            headers = (
                *record.headers,
                ("_dlq.errors.disposition", letter.disposition.encode()),
                ("_dlq.errors.original.topic", source.name.encode()),
                ("_dlq.errors.original.partition", str(index).encode()),
                ("_dlq.errors.original.offset", str(offset).encode()),
                ("_dlq.errors.group.id", group_id.encode()),
                ("_dlq.errors.delivery.count", str(letter.delivery_count).encode()),
            )
            letters.append(NewRecord(record.key, record.value, now_wall, headers))
        if not letters:
            return
        topic = self.logs.topics.get(target)
        if topic is None:
            topic = self.logs.create_topic(target, 1, {})
            logger.info("created dead-letter topic %s for share group %s", target, group_id)
        partition = topic.partitions[index % len(topic.partitions)]
        await append_durably(
            partition.log,
            letters,
            self.group_commit,
            self.appended,
            (topic.name, partition.index),
            log_append_time=topic.config.log_append_time,
        )
        self.dead_lettered_total += len(letters)
        logger.info(
            "share group %s: dead-lettered %d record(s) of %s-%d into %s",
            group_id,
            len(letters),
            source.name,
            index,
            target,
        )

    # -- administration --------------------------------------------------------------------------

    def partitions_of(self, group_id: str) -> list[tuple[Topic, int, SharePartition]]:
        found = []
        for (group, topic_id, index), partition in sorted(
            self.partitions.items(), key=lambda item: (str(item[0][1]), item[0][2])
        ):
            topic = self.logs.topics_by_id.get(topic_id)
            if group == group_id and topic is not None and index < len(topic.partitions):
                found.append((topic, index, partition))
        return found

    def summary(self, group_id: str) -> list[PartitionSummary]:
        now_wall = self.clock.wall_ms()
        rows = []
        for topic, index, partition in self.partitions_of(group_id):
            log = topic.partitions[index].log
            oldest = partition.first_available(now_wall)
            if oldest is None and partition.end_offset < log.log_end_offset:
                oldest = max(partition.end_offset, log.log_start_offset)
            timestamp = None if oldest is None else _timestamp_at(log, oldest)
            rows.append(
                PartitionSummary(
                    group_id,
                    topic.name,
                    index,
                    partition.start_offset,
                    lag_of(partition, log.log_end_offset),
                    partition.count(RecordState.ACQUIRED),
                    partition.count(RecordState.AVAILABLE)
                    + max(0, log.log_end_offset - partition.end_offset),
                    partition.archived_total,
                    timestamp,
                )
            )
        return rows

    def all_summaries(self) -> Iterator[PartitionSummary]:
        for group_id in list(self.groups):
            yield from self.summary(group_id)

    def member_counts(self) -> Iterator[tuple[str, int]]:
        for group_id, group in self.groups.items():
            yield group_id, len(group.members)

    def wall_ms(self) -> int:
        return self.clock.wall_ms()

    async def reset_offsets(self, group_id: str, topic: Topic, starts: dict[int, int]) -> None:
        """AlterShareGroupOffsets: start each partition afresh at the given offset (-1 latest,
        -2 earliest). The caller checks that the group is empty."""
        limits = self.settings(group_id).limits
        keys = []
        for index, wanted in starts.items():
            log = topic.partitions[index].log
            special = {-1: log.log_end_offset, -2: log.log_start_offset}
            start = min(max(special.get(wanted, wanted), log.log_start_offset), log.log_end_offset)
            key = (group_id, topic.topic_id, index)
            self.partitions[key] = SharePartition(start, limits)
            keys.append(key)
        self.groups.setdefault(group_id, ShareGroup(group_id))
        await self._persist(keys)

    async def delete_offsets(self, group_id: str, topic: Topic) -> None:
        keys = [key for key in self.partitions if key[0] == group_id and key[1] == topic.topic_id]
        for key in keys:
            del self.partitions[key]
        await self._persist(keys)

    async def delete_group(self, group_id: str) -> None:
        """DeleteGroups of an empty share group: its state and configs go."""
        keys = [key for key in self.partitions if key[0] == group_id]
        for key in keys:
            del self.partitions[key]
        entries: list[tuple[bytes, bytes | None]] = [
            (encode_key(PartitionKey(*key)), None) for key in keys
        ]
        if group_id in self.group_configs:
            entries.append((encode_key(GroupConfigKey(group_id)), None))
        await self._append(entries)
        self.group_configs.pop(group_id, None)
        self._settings.pop(group_id, None)
        self.groups.pop(group_id, None)

    # -- lifecycle -------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any, what: str) -> None:
        async def run() -> None:
            try:
                await coroutine
            except Exception as error:
                logger.error("%s failed: %s", what, error)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_idle(self) -> None:
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def lag_of(partition: SharePartition, log_end_offset: int) -> int:
    """Records not yet done: from the start offset to the log end, minus those already
    acknowledged or archived inside the window."""
    return max(0, log_end_offset - partition.start_offset - partition.done_in_window())


def _deliver_after(data: bytes, header: BatchHeader, delay_ms: int) -> Callable[[int], int] | None:
    """When each record of the batch may first be acquired, or None when all may be now."""
    end = header.position + header.size
    compressed = header.attributes & _COMPRESSION_MASK != 0
    if not compressed and data.find(_DELIVER_AFTER_BYTES, header.position, end) < 0:
        if delay_ms == 0:
            return None
        not_before = header.max_timestamp + delay_ms
        return lambda _offset: not_before
    times: dict[int, int] = {}
    try:
        for record in iter_records(data, header):
            at = record.timestamp + delay_ms if delay_ms else 0
            for name, value in record.headers:
                if name == DELIVER_AFTER_HEADER and value is not None:
                    # A malformed delay header delivers at once.
                    with contextlib.suppress(UnicodeDecodeError, ValueError):
                        at = max(at, int(value.decode("ascii").strip()))
            if at:
                times[record.offset] = at
    except InvalidRecordError:
        return None
    if not times:
        return None
    return lambda offset: times.get(offset, 0)


def _read_records(log: Log, offsets: list[int]) -> list[tuple[int, Any]]:
    """The stored records at `offsets` (ascending); offsets no longer in the log are skipped."""
    found = []
    wanted = set(offsets)
    position = 0
    while position < len(offsets):
        offset = offsets[position]
        try:
            data = log.read(offset, _READ_CHUNK)
        except Exception:
            position += 1
            continue
        if not data:
            break
        last_seen = offset
        for header in iter_batches(data, verify_crc=False):
            last_seen = header.last_offset
            if not any(header.base_offset <= o <= header.last_offset for o in wanted):
                continue
            try:
                for record in iter_records(data, header):
                    if record.offset in wanted:
                        found.append((record.offset, record))
            except InvalidRecordError as error:
                # Undecodable, or inflating past the cap: its records are not dead-lettered.
                logger.warning("not dead-lettering the batch at %d: %s", header.base_offset, error)
        while position < len(offsets) and offsets[position] <= last_seen:
            position += 1
    return found


def _timestamp_at(log: Log, offset: int) -> int | None:
    try:
        data = log.read(offset, 1)
    except Exception:
        return None
    try:
        for header in iter_batches(data, verify_crc=False):
            if header.last_offset >= offset:
                for record in iter_records(data, header):
                    if record.offset >= offset:
                        return record.timestamp
    except InvalidRecordError:
        return None
    return None
