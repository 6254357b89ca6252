"""Committed offsets: validating commits against group membership, storing them durably,
answering fetches, deleting them, and expiring them (KIP-211).

Shares the coordinator's `groups` map: a commit from a member is checked against the group's
generation (shared/notes/groups-and-idempotence.md §3), and a standalone consumer's commit
creates an empty "simple" group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from millpond.clock import Clock
from millpond.config import BrokerConfig
from millpond.coordinator.classic_group import CONSUMER_PROTOCOL_TYPE
from millpond.coordinator.classic_group import ClassicGroup
from millpond.coordinator.group_state import GroupState
from millpond.coordinator.lag import GroupPartitionLag
from millpond.coordinator.lag import compute_lag
from millpond.coordinator.metadata_log import GroupMetadataLog
from millpond.coordinator.offsets_topic import OffsetValue
from millpond.protocol.record_codec import NewRecord
from millpond.storage.log_manager import LogManager

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetCommitEntry:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


class OffsetManager:
    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock,
        logs: LogManager,
        metadata_log: GroupMetadataLog,
        groups: dict[str, ClassicGroup],
    ) -> None:
        self.config = config
        self.clock = clock
        self.logs = logs
        self.metadata_log = metadata_log
        self.groups = groups
        self.committed: dict[str, dict[TopicPartition, OffsetValue]] = {}

    def replay(self, group_id: str, topic: str, partition: int, value: OffsetValue | None) -> None:
        by_partition = self.committed.setdefault(group_id, {})
        if value is None:
            by_partition.pop((topic, partition), None)
        elif group_id not in self.groups:
            by_partition[(topic, partition)] = value
            # A simple group's offsets expire from their commit time, not from this restart.
            self.groups[group_id] = ClassicGroup(group_id)
        else:
            by_partition[(topic, partition)] = value

    def simple_group(self, group_id: str) -> ClassicGroup:
        """The group `group_id`, created empty (for standalone commits) if unknown."""
        group = self.groups.get(group_id)
        if group is None:
            group = ClassicGroup(group_id, empty_since_ms=self.clock.wall_ms())
            self.groups[group_id] = group
        return group

    async def commit(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        entries: list[OffsetCommitEntry],
    ) -> dict[TopicPartition, ErrorCode]:
        """Validate and durably store offsets; one error per (topic, partition)."""
        group_error = self._check_commit(group_id, generation, member_id, group_instance_id)
        if group_error is not None:
            return {(e.topic, e.partition): group_error for e in entries}
        limit = self.config["offset.metadata.max.bytes"]
        results: dict[TopicPartition, ErrorCode] = {}
        accepted: list[OffsetCommitEntry] = []
        for entry in entries:
            key = (entry.topic, entry.partition)
            if entry.metadata is not None and len(entry.metadata.encode()) > limit:
                results[key] = ErrorCode.offset_metadata_too_large
            elif self.logs.partition(entry.topic, entry.partition) is None:
                results[key] = ErrorCode.unknown_topic_or_partition
            else:
                results[key] = ErrorCode.none
                accepted.append(entry)
        if not accepted:
            return results
        now_wall = self.clock.wall_ms()
        values = {
            (e.topic, e.partition): OffsetValue(
                e.offset, e.leader_epoch, e.metadata or "", now_wall
            )
            for e in accepted
        }
        records = [
            self.metadata_log.offset_record(group_id, topic, partition, value)
            for (topic, partition), value in values.items()
        ]
        try:
            await self.metadata_log.append(records)
        except Exception as error:
            logger.error("storing offsets for group %s failed: %s", group_id, error)
            return dict.fromkeys(results, ErrorCode.kafka_storage_error)
        self.committed.setdefault(group_id, {}).update(values)
        return results

    def _check_commit(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode | None:
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            if generation < 0:
                self.simple_group(group_id)  # a standalone (assign()) consumer's group
                return None
            return ErrorCode.illegal_generation
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation < 0 and not member_id and group_instance_id is None:
            return None if group.state is GroupState.EMPTY else ErrorCode.unknown_member_id
        error = group.check_member(member_id, group_instance_id)
        if error is not None:
            return error
        if generation != group.generation:
            return ErrorCode.illegal_generation
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        member = group.members[member_id]
        member.session_deadline = self.clock.monotonic_ms() + member.session_timeout_ms
        return None

    def fetch(
        self, group_id: str, wanted: list[tuple[str, list[int]]] | None
    ) -> list[tuple[str, int, OffsetValue | None]]:
        """Committed offsets of `wanted` (None: every partition the group committed)."""
        committed = self.committed.get(group_id, {})
        if wanted is None:
            return [(t, p, v) for (t, p), v in sorted(committed.items())]
        return [(t, p, committed.get((t, p))) for t, partitions in wanted for p in partitions]

    async def delete(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: refused for topics a live consumer group subscribes to."""
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found, {}
        if group.members and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.non_empty_group, {}
        subscribed = group.subscribed_topics() if group.members else set()
        results: dict[TopicPartition, ErrorCode] = {}
        doomed = []
        for topic, partition in partitions:
            if self.logs.partition(topic, partition) is None:
                results[(topic, partition)] = ErrorCode.unknown_topic_or_partition
            elif subscribed is None or topic in subscribed:
                results[(topic, partition)] = ErrorCode.group_subscribed_to_topic
            else:
                results[(topic, partition)] = ErrorCode.none
                if (topic, partition) in self.committed.get(group_id, {}):
                    doomed.append((topic, partition))
        if doomed:
            try:
                await self.metadata_log.append(
                    [self.metadata_log.offset_record(group_id, t, p, None) for t, p in doomed]
                )
            except Exception as error:
                logger.error("deleting offsets of group %s failed: %s", group_id, error)
                return ErrorCode.kafka_storage_error, {}
            for key in doomed:
                self.committed[group_id].pop(key, None)
        return ErrorCode.none, results

    def tombstones(self, group_id: str) -> list[NewRecord]:
        """Records deleting every offset of `group_id` (for DeleteGroups)."""
        return [
            self.metadata_log.offset_record(group_id, t, p, None)
            for t, p in self.committed.get(group_id, {})
        ]

    def forget(self, group_id: str) -> dict[TopicPartition, OffsetValue]:
        """Drop a group's offsets from memory; returns them (to restore if a write fails)."""
        return self.committed.pop(group_id, {})

    async def expire(self) -> int:
        """KIP-211: drop offsets of groups Empty for offsets.retention.minutes; groups left with
        neither members nor offsets go Dead. Returns how many offsets were dropped."""
        retention_ms = self.config["offsets.retention.minutes"] * 60_000
        now_wall = self.clock.wall_ms()
        records: list[NewRecord] = []
        doomed: list[tuple[str, TopicPartition, OffsetValue]] = []
        dead: list[str] = []
        for group_id, committed in self.committed.items():
            group = self.groups.get(group_id)
            if group is not None and group.state is not GroupState.EMPTY:
                continue
            since = group.empty_since_ms if group is not None and group.empty_since_ms else 0
            expired = [
                key
                for key, value in committed.items()
                if max(since, value.commit_timestamp) + retention_ms <= now_wall
            ]
            doomed += [(group_id, key, committed[key]) for key in expired]
            records += [self.metadata_log.offset_record(group_id, *key, None) for key in expired]
            if group is not None and expired and len(expired) == len(committed):
                dead.append(group_id)
        for group_id, group in self.groups.items():
            # Groups joined once and left with nothing (no members, no offsets) go too, so
            # abandoned group ids do not pile up.
            if (
                group.state is GroupState.EMPTY
                and not group.members
                and not group.pending_members
                and not self.committed.get(group_id)
                and group_id not in dead
            ):
                dead.append(group_id)
        records += [self.metadata_log.group_record(group_id, None) for group_id in dead]
        if not records:
            return 0
        snapshot = {group_id: self.groups.get(group_id) for group_id in dead}
        await self.metadata_log.append(records)
        # Commits and joins may have arrived during the await: drop only what is unchanged.
        for group_id, key, value in doomed:
            by_partition = self.committed.get(group_id, {})
            if by_partition.get(key) is value:
                del by_partition[key]
        for group_id, group in snapshot.items():
            current = self.groups.get(group_id)
            if (
                current is None
                or current is not group
                or current.state is not GroupState.EMPTY
                or current.members
                or current.pending_members
                or self.committed.get(group_id)
            ):
                continue
            del self.groups[group_id]
            current.transition(GroupState.DEAD)
            self.committed.pop(group_id, None)
        return len(doomed)

    def lag(self) -> list[GroupPartitionLag]:
        return compute_lag(self.committed, self.logs, self.clock.wall_ms())
