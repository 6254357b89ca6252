"""The coordinator's side of `__consumer_offsets`: appending its records durably and reading
them back at start (formats in offsets_topic.py).

Committed offsets are appended and awaited until fsynced before a commit is answered. A
group's settled generation is appended in the background: losing it only makes members rejoin
after a restart, while their committed offsets never depend on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.clock import Clock
from millpond.config import BrokerConfig
from millpond.coordinator.classic_group import ClassicGroup
from millpond.coordinator.classic_group import Member
from millpond.coordinator.group_state import GroupState
from millpond.coordinator.internal_log import append_durably
from millpond.coordinator.internal_log import read_records
from millpond.coordinator.offsets_topic import GroupKey
from millpond.coordinator.offsets_topic import GroupValue
from millpond.coordinator.offsets_topic import MemberValue
from millpond.coordinator.offsets_topic import OffsetKey
from millpond.coordinator.offsets_topic import OffsetValue
from millpond.coordinator.offsets_topic import encode_group_key
from millpond.coordinator.offsets_topic import encode_group_value
from millpond.coordinator.offsets_topic import encode_offset_key
from millpond.coordinator.offsets_topic import encode_offset_value
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import Record
from millpond.storage.log_manager import LogManager
from millpond.storage.log_manager import Partition

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
_SEGMENT_BYTES = 100 * 1024 * 1024


class GroupMetadataLog:
    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock,
        logs: LogManager,
        group_commit: GroupCommit,
        appended: AppendSignal,
    ) -> None:
        self.config = config
        self.clock = clock
        self.logs = logs
        self.group_commit = group_commit
        self.appended = appended
        self._partition: Partition | None = None
        self._background: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        """Create the compacted internal topic on first start."""
        topic = self.logs.topics.get(OFFSETS_TOPIC)
        if topic is None:
            topic = self.logs.create_topic(
                OFFSETS_TOPIC,
                self.config["offsets.topic.num.partitions"],
                {"cleanup.policy": "compact", "segment.bytes": str(_SEGMENT_BYTES)},
            )
        self._partition = topic.partitions[0]

    def records(self) -> Iterator[Record]:
        """Every record from the log start, in order (undecodable batches skipped)."""
        assert self._partition is not None, "open() first"
        return read_records(self._partition.log, OFFSETS_TOPIC)

    async def append(self, records: list[NewRecord]) -> None:
        """Append records and wait until they are fsynced; raises on a storage failure."""
        assert self._partition is not None, "open() first"
        partition = self._partition
        await append_durably(
            partition.log,
            records,
            self.group_commit,
            self.appended,
            (OFFSETS_TOPIC, partition.index),
        )

    def store_group_soon(self, group: ClassicGroup) -> None:
        """Append the group's settled state in the background."""
        record = self.group_record(group.group_id, encode_group(group, self.clock.wall_ms()))
        task = asyncio.get_running_loop().create_task(self._store(group.group_id, record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store(self, group_id: str, record: NewRecord) -> None:
        try:
            await self.append([record])
        except Exception as error:
            logger.error("storing metadata of group %s failed: %s", group_id, error)

    async def wait_idle(self) -> None:
        """Let background writes finish (before the logs are closed)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def offset_record(
        self, group_id: str, topic: str, partition: int, value: OffsetValue | None
    ) -> NewRecord:
        key = encode_offset_key(OffsetKey(group_id, topic, partition))
        encoded = None if value is None else encode_offset_value(value)
        return NewRecord(key, encoded, self.clock.wall_ms())

    def group_record(self, group_id: str, value: GroupValue | None) -> NewRecord:
        encoded = None if value is None else encode_group_value(value)
        return NewRecord(encode_group_key(GroupKey(group_id)), encoded, self.clock.wall_ms())


def encode_group(group: ClassicGroup, now_wall: int) -> GroupValue:
    protocol = group.protocol_name
    return GroupValue(
        group.protocol_type or "",
        group.generation,
        protocol,
        group.leader_id,
        now_wall,
        tuple(
            MemberValue(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
                m.metadata_for(protocol) if protocol else b"",
                m.assignment,
            )
            for m in group.members.values()
        ),
    )


def decode_group(group_id: str, value: GroupValue, now: int) -> ClassicGroup:
    """A group as stored; members get a fresh session from `now` (monotonic ms)."""
    group = ClassicGroup(group_id)
    group.generation = value.generation
    group.protocol_type = value.protocol_type or None
    group.protocol_name = value.protocol
    for stored in value.members:
        member = Member(
            stored.member_id,
            stored.group_instance_id,
            stored.client_id,
            stored.client_host,
            stored.rebalance_timeout_ms,
            stored.session_timeout_ms,
            [(value.protocol or "", stored.subscription)],
            session_deadline=now + stored.session_timeout_ms,
            assignment=stored.assignment,
        )
        group.add_member(member)
    group.leader_id = value.leader if value.leader in group.members else group.leader_id
    if group.members and value.protocol is not None:
        group.state = GroupState.STABLE
    else:
        group.state = GroupState.EMPTY
        group.empty_since_ms = value.state_timestamp
    return group
