"""The classic group coordinator: membership, rebalances, committed offsets.

Follows Kafka's GroupCoordinator (see shared/notes/groups-and-idempotence.md §2-3). Parked
JoinGroup and SyncGroup calls are futures resolved when the rebalance moves on; timers are
deadlines on the injected clock, checked by `tick()`, which the broker calls every
`TICK_INTERVAL_MS` and tests call after advancing a FakeClock. Every committed offset and
every settled generation is written to `__consumer_offsets` (offsets are acknowledged only
once fsynced) and replayed from it at start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.clock import Clock
from millpond.config import BrokerConfig
from millpond.coordinator.classic_group import CONSUMER_PROTOCOL_TYPE
from millpond.coordinator.classic_group import ClassicGroup
from millpond.coordinator.classic_group import JoinResult
from millpond.coordinator.classic_group import Member
from millpond.coordinator.classic_group import SyncResult
from millpond.coordinator.group_state import GroupState
from millpond.coordinator.lag import GroupPartitionLag
from millpond.coordinator.offsets_topic import CorruptRecordError
from millpond.coordinator.offsets_topic import GroupKey
from millpond.coordinator.offsets_topic import GroupValue
from millpond.coordinator.offsets_topic import MemberValue
from millpond.coordinator.offsets_topic import OffsetKey
from millpond.coordinator.offsets_topic import OffsetValue
from millpond.coordinator.offsets_topic import decode_group_value
from millpond.coordinator.offsets_topic import decode_key
from millpond.coordinator.offsets_topic import decode_offset_value
from millpond.coordinator.offsets_topic import encode_group_key
from millpond.coordinator.offsets_topic import encode_group_value
from millpond.coordinator.offsets_topic import encode_offset_key
from millpond.coordinator.offsets_topic import encode_offset_value
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import InvalidRecordError
from millpond.protocol.records import iter_batches
from millpond.storage.log_manager import LogManager
from millpond.storage.log_manager import Partition

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
TICK_INTERVAL_MS = 100

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetCommitEntry:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: GroupState


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: GroupState
    protocol_type: str
    protocol_data: str
    members: tuple[MemberDescription, ...]


class GroupCoordinator:
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
        self.groups: dict[str, ClassicGroup] = {}
        self.offsets: dict[str, dict[TopicPartition, OffsetValue]] = {}
        self._partition: Partition | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- loading ------------------------------------------------------------------------------

    def load(self) -> int:
        """Create `__consumer_offsets` if needed and replay it; returns records replayed.

        A record that cannot be decoded is skipped with a warning: one damaged commit must not
        keep the broker from starting.
        """
        topic = self.logs.topics.get(OFFSETS_TOPIC)
        if topic is None:
            topic = self.logs.create_topic(
                OFFSETS_TOPIC,
                self.config["offsets.topic.num.partitions"],
                {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)},
            )
        self._partition = topic.partitions[0]
        log = self._partition.log
        replayed = 0
        offset = log.log_start_offset
        now = self.clock.monotonic_ms()
        while offset < log.log_end_offset:
            data = log.read(offset, 1 << 20)
            if not data:
                break
            for header in iter_batches(data, verify_crc=False):
                try:
                    records = list(iter_records(data, header))
                except InvalidRecordError as error:
                    logger.warning(
                        "skipping undecodable %s batch at %d: %s",
                        OFFSETS_TOPIC,
                        header.base_offset,
                        error,
                    )
                    records = []
                for record in records:
                    replayed += 1
                    self._replay(record.key, record.value, record.offset, now)
                offset = header.next_offset
        for group in self.groups.values():
            if not group.members and group.state is GroupState.STABLE:
                group.state = GroupState.EMPTY
        return replayed

    def _replay(self, key: bytes | None, value: bytes | None, offset: int, now: int) -> None:
        if key is None:
            return
        try:
            decoded = decode_key(key)
            if isinstance(decoded, OffsetKey):
                by_partition = self.offsets.setdefault(decoded.group, {})
                if value is None:
                    by_partition.pop((decoded.topic, decoded.partition), None)
                else:
                    by_partition[(decoded.topic, decoded.partition)] = decode_offset_value(value)
                    self._group_for_offsets(decoded.group)
                return
            if value is None:
                self.groups.pop(decoded.group, None)
                return
            self.groups[decoded.group] = self._group_from_value(
                decoded.group, decode_group_value(value), now
            )
        except CorruptRecordError as error:
            logger.warning("skipping corrupt %s record at %d: %s", OFFSETS_TOPIC, offset, error)

    def _group_from_value(self, group_id: str, value: GroupValue, now: int) -> ClassicGroup:
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

    def _group_for_offsets(self, group_id: str) -> ClassicGroup:
        group = self.groups.get(group_id)
        if group is None:
            group = ClassicGroup(group_id, empty_since_ms=self.clock.wall_ms())
            self.groups[group_id] = group
        return group

    # --- JoinGroup ----------------------------------------------------------------------------

    async def join_group(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        *,
        require_known_member_id: bool,
    ) -> JoinResult:
        if not group_id:
            return JoinResult(ErrorCode.invalid_group_id, member_id=member_id)
        minimum = self.config["group.min.session.timeout.ms"]
        maximum = self.config["group.max.session.timeout.ms"]
        if not minimum <= session_timeout_ms <= maximum:
            return JoinResult(ErrorCode.invalid_session_timeout, member_id=member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.unknown_member_id, member_id=member_id)
            group = ClassicGroup(group_id, empty_since_ms=self.clock.wall_ms())
            self.groups[group_id] = group
        if group.state is GroupState.DEAD:
            return JoinResult(ErrorCode.coordinator_not_available, member_id=member_id)
        if not group.accepts(protocol_type, protocols):
            return JoinResult(ErrorCode.inconsistent_group_protocol, member_id=member_id)
        now = self.clock.monotonic_ms()

        def new_member(new_id: str) -> Member:
            return Member(
                new_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                protocols,
                session_deadline=now + session_timeout_ms,
            )

        if not member_id:
            if group_instance_id is not None:
                known = group.static_members.get(group_instance_id)
                if known is not None:
                    return await self._replace_static_member(
                        group, known, group_instance_id, protocols, session_timeout_ms,
                        rebalance_timeout_ms, client_id, client_host, now,
                    )  # fmt: skip
                return await self._add_and_join(
                    group, new_member(f"{group_instance_id}-{uuid.uuid4()}"), protocol_type, now
                )
            generated = f"{client_id}-{uuid.uuid4()}"
            if require_known_member_id:
                group.pending_members[generated] = now + session_timeout_ms
                return JoinResult(ErrorCode.member_id_required, member_id=generated)
            return await self._add_and_join(group, new_member(generated), protocol_type, now)

        if member_id in group.pending_members:
            del group.pending_members[member_id]
            return await self._add_and_join(group, new_member(member_id), protocol_type, now)
        error = self._check_member(group, member_id, group_instance_id)
        if error is not None:
            return JoinResult(error, member_id=member_id)
        member = group.members[member_id]
        member.session_deadline = now + session_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        if group.state is GroupState.PREPARING_REBALANCE:
            member.protocols = protocols
            return await self._park_join(group, member, now)
        if group.state is GroupState.COMPLETING_REBALANCE:
            if member.same_protocols(protocols):
                return self._join_result(group, member)
            member.protocols = protocols
            self._prepare_rebalance(group, now, f"{member_id} changed its protocols")
            return await self._park_join(group, member, now)
        if group.state is GroupState.STABLE:
            if member_id == group.leader_id or not member.same_protocols(protocols):
                member.protocols = protocols
                self._prepare_rebalance(group, now, f"{member_id} rejoined")
                return await self._park_join(group, member, now)
            return JoinResult(
                ErrorCode.none,
                group.generation,
                group.protocol_type,
                group.protocol_name,
                group.leader_id or "",
                member_id,
            )
        return JoinResult(ErrorCode.unknown_member_id, member_id=member_id)

    def _check_member(
        self, group: ClassicGroup, member_id: str, group_instance_id: str | None
    ) -> ErrorCode | None:
        """UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID, or None if `member_id` may speak."""
        if group_instance_id is not None:
            known = group.static_members.get(group_instance_id)
            if known is not None and known != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in group.members:
            return ErrorCode.unknown_member_id
        return None

    async def _add_and_join(
        self, group: ClassicGroup, member: Member, protocol_type: str, now: int
    ) -> JoinResult:
        if not group.members:
            group.protocol_type = protocol_type
        group.add_member(member)
        if group.state is GroupState.PREPARING_REBALANCE and group.initial_delay_until is not None:
            # A joiner during the initial delay extends it, within the rebalance timeout.
            delay = self.config["group.initial.rebalance.delay.ms"]
            assert group.join_deadline is not None
            group.initial_delay_until = min(now + delay, group.join_deadline)
        elif group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now, f"{member.member_id} joined")
        return await self._park_join(group, member, now)

    async def _replace_static_member(
        self,
        group: ClassicGroup,
        old_id: str,
        instance_id: str,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        now: int,
    ) -> JoinResult:
        old = group.members[old_id]
        self._fail_waiters(old, ErrorCode.fenced_instance_id)
        protocols_unchanged = old.same_protocols(protocols)
        old_leader = group.leader_id
        member = group.replace_static_member(old_id, f"{instance_id}-{uuid.uuid4()}")
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        member.session_deadline = now + session_timeout_ms
        if group.state is GroupState.STABLE and protocols_unchanged:
            # KIP-345: a returning static member takes its old place without a rebalance. The
            # reply names the old leader id so the member does not run an assignment.
            self._store_group_soon(group)
            return JoinResult(
                ErrorCode.none,
                group.generation,
                group.protocol_type,
                group.protocol_name,
                old_leader or "",
                member.member_id,
            )
        if group.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now, f"static member {instance_id} replaced")
        return await self._park_join(group, member, now)

    async def _park_join(self, group: ClassicGroup, member: Member, now: int) -> JoinResult:
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(ErrorCode.rebalance_in_progress))
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        member.join_future = future
        self._maybe_complete_join(group, now)
        return await future

    def _join_result(self, group: ClassicGroup, member: Member) -> JoinResult:
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member.member_id == group.leader_id and group.protocol_name is not None:
            protocol = group.protocol_name
            members = tuple(
                (m.member_id, m.group_instance_id, m.metadata_for(protocol))
                for m in group.members.values()
            )
        return JoinResult(
            ErrorCode.none,
            group.generation,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            member.member_id,
            members,
        )

    def _prepare_rebalance(self, group: ClassicGroup, now: int, reason: str) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                self._fail_sync(member, ErrorCode.rebalance_in_progress)
        timeout = group.rebalance_timeout_ms()
        if group.state is GroupState.EMPTY:
            delay = self.config["group.initial.rebalance.delay.ms"]
            group.join_deadline = now + max(timeout, delay)
            group.initial_delay_until = now + min(delay, timeout) if delay else None
        else:
            group.join_deadline = now + timeout
            group.initial_delay_until = None
        group.sync_deadline = None
        group.transition(GroupState.PREPARING_REBALANCE)
        logger.info(
            "group %s rebalancing (generation %d): %s", group.group_id, group.generation, reason
        )

    def _maybe_complete_join(self, group: ClassicGroup, now: int) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        timed_out = group.join_deadline is not None and now >= group.join_deadline
        if not timed_out:
            if group.initial_delay_until is not None and now < group.initial_delay_until:
                return
            if not group.all_members_joined():
                return
        self._complete_join(group, now)

    def _complete_join(self, group: ClassicGroup, now: int) -> None:
        for member in list(group.members.values()):
            if not member.awaiting_join and member.group_instance_id is None:
                group.remove_member(member.member_id)
        group.pending_members.clear()
        group.join_deadline = group.initial_delay_until = None
        group.generation += 1
        joined = [m for m in group.members.values() if m.awaiting_join]
        if not joined:
            for member in group.members.values():
                self._fail_waiters(member, ErrorCode.unknown_member_id)
            group.members.clear()
            group.static_members.clear()
            group.leader_id = None
            group.protocol_name = None
            group.transition(GroupState.EMPTY)
            group.empty_since_ms = self.clock.wall_ms()
            self._store_group_soon(group)
            return
        group.protocol_name = group.select_protocol()
        leader = group.members.get(group.leader_id or "")
        if leader is None or not leader.awaiting_join:
            group.leader_id = joined[0].member_id
        group.transition(GroupState.COMPLETING_REBALANCE)
        group.sync_deadline = now + group.rebalance_timeout_ms()
        for member in joined:
            member.session_deadline = now + member.session_timeout_ms
            assert member.join_future is not None
            member.join_future.set_result(self._join_result(group, member))
        logger.info(
            "group %s generation %d: %d member(s), protocol %s, leader %s",
            group.group_id, group.generation, len(group.members), group.protocol_name,
            group.leader_id,
        )  # fmt: skip

    # --- SyncGroup ----------------------------------------------------------------------------

    async def sync_group(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        group = self.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.unknown_member_id)
        error = self._check_member(group, member_id, group_instance_id)
        if error is not None:
            return SyncResult(error)
        if generation != group.generation:
            return SyncResult(ErrorCode.illegal_generation)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        member = group.members[member_id]
        now = self.clock.monotonic_ms()
        member.session_deadline = now + member.session_timeout_ms
        if group.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.rebalance_in_progress)
        if group.state is GroupState.STABLE:
            return self._sync_result(group, member)
        if group.state is not GroupState.COMPLETING_REBALANCE:
            return SyncResult(ErrorCode.unknown_member_id)
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(ErrorCode.rebalance_in_progress))
        future: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        member.sync_future = future
        if member_id == group.leader_id:
            for each in group.members.values():
                # Members the leader left out get zero-length bytes, as Kafka sends.
                each.assignment = assignments.get(each.member_id, b"")
            group.transition(GroupState.STABLE)
            group.sync_deadline = None
            for each in group.members.values():
                if each.sync_future is not None and not each.sync_future.done():
                    each.sync_future.set_result(self._sync_result(group, each))
            self._store_group_soon(group)
        return await future

    def _sync_result(self, group: ClassicGroup, member: Member) -> SyncResult:
        return SyncResult(
            ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name
        )

    # --- Heartbeat and LeaveGroup ---------------------------------------------------------------

    def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation: int
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        error = self._check_member(group, member_id, group_instance_id)
        if error is not None:
            return error
        if generation != group.generation:
            return ErrorCode.illegal_generation
        member = group.members[member_id]
        member.session_deadline = self.clock.monotonic_ms() + member.session_timeout_ms
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave_group(self, group_id: str, leaving: list[tuple[str, str | None]]) -> list[ErrorCode]:
        """Remove each (member id, group instance id); one error per entry."""
        group = self.groups.get(group_id)
        if group is None:
            return [ErrorCode.unknown_member_id for _ in leaving]
        now = self.clock.monotonic_ms()
        errors = []
        removed_any = False
        for given_id, instance_id in leaving:
            member_id = given_id
            if not member_id and instance_id is not None:
                # The admin path: a static member named by its instance id alone.
                member_id = group.static_members.get(instance_id, "")
                if not member_id:
                    errors.append(ErrorCode.unknown_member_id)
                    continue
            error = self._check_member(group, member_id, instance_id)
            if error is not None:
                errors.append(error)
                continue
            member = group.remove_member(member_id)
            assert member is not None
            self._fail_waiters(member, ErrorCode.unknown_member_id)
            removed_any = True
            errors.append(ErrorCode.none)
        if removed_any:
            self._after_member_removed(group, now, "member(s) left")
        return errors

    def _after_member_removed(self, group: ClassicGroup, now: int, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now, reason)
            self._maybe_complete_join(group, now)
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(group, now)

    def _fail_sync(self, member: Member, error: ErrorCode) -> None:
        if member.sync_future is not None and not member.sync_future.done():
            member.sync_future.set_result(SyncResult(error))

    def _fail_waiters(self, member: Member, error: ErrorCode) -> None:
        if member.join_future is not None and not member.join_future.done():
            member.join_future.set_result(JoinResult(error, member_id=member.member_id))
        self._fail_sync(member, error)

    # --- timers ---------------------------------------------------------------------------------

    def tick(self) -> None:
        """Expire sessions, pending member ids and rebalance deadlines due by now."""
        now = self.clock.monotonic_ms()
        for group in list(self.groups.values()):
            for pending, deadline in list(group.pending_members.items()):
                if now >= deadline:
                    del group.pending_members[pending]
            expired = [
                member
                for member in group.members.values()
                if now >= member.session_deadline
                and not (group.state is GroupState.PREPARING_REBALANCE and member.awaiting_join)
            ]
            for member in expired:
                group.remove_member(member.member_id)
                self._fail_waiters(member, ErrorCode.unknown_member_id)
                logger.info("group %s: member %s session expired", group.group_id, member.member_id)
            if expired:
                self._after_member_removed(group, now, "session expired")
            if (
                group.state is GroupState.COMPLETING_REBALANCE
                and group.sync_deadline is not None
                and now >= group.sync_deadline
            ):
                laggards = [m for m in group.members.values() if not m.awaiting_sync]
                for member in laggards:
                    group.remove_member(member.member_id)
                self._after_member_removed(group, now, "members did not sync in time")
            self._maybe_complete_join(group, now)

    # --- offsets --------------------------------------------------------------------------------

    async def commit_offsets(
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
            NewRecord(
                encode_offset_key(OffsetKey(group_id, topic, partition)),
                encode_offset_value(value),
                now_wall,
            )
            for (topic, partition), value in values.items()
        ]
        try:
            await self._append(records)
        except Exception as error:
            logger.error("storing offsets for group %s failed: %s", group_id, error)
            return dict.fromkeys(results, ErrorCode.kafka_storage_error)
        self.offsets.setdefault(group_id, {}).update(values)
        return results

    def _check_commit(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode | None:
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            if generation < 0:
                self._group_for_offsets(group_id)  # a standalone (assign()) consumer's group
                return None
            return ErrorCode.illegal_generation
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation < 0 and not member_id and group_instance_id is None:
            return None if group.state is GroupState.EMPTY else ErrorCode.unknown_member_id
        error = self._check_member(group, member_id, group_instance_id)
        if error is not None:
            return error
        if generation != group.generation:
            return ErrorCode.illegal_generation
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        member = group.members[member_id]
        member.session_deadline = self.clock.monotonic_ms() + member.session_timeout_ms
        return None

    def fetch_offsets(
        self, group_id: str, wanted: list[tuple[str, list[int]]] | None
    ) -> list[tuple[str, int, OffsetValue | None]]:
        """Committed offsets of `wanted` (None: every partition the group committed)."""
        committed = self.offsets.get(group_id, {})
        if wanted is None:
            return [(t, p, v) for (t, p), v in sorted(committed.items())]
        return [(t, p, committed.get((t, p))) for t, partitions in wanted for p in partitions]

    def committed_topics(self, group_id: str) -> dict[str, list[int]]:
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(self.offsets.get(group_id, {})):
            topics.setdefault(topic, []).append(partition)
        return topics

    async def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found, {}
        if group.members and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.non_empty_group, {}
        subscribed = group.subscribed_topics() if group.members else set()
        results: dict[TopicPartition, ErrorCode] = {}
        doomed = []
        for topic, partition in partitions:
            if subscribed is None or topic in subscribed:
                results[(topic, partition)] = ErrorCode.group_subscribed_to_topic
            else:
                results[(topic, partition)] = ErrorCode.none
                if (topic, partition) in self.offsets.get(group_id, {}):
                    doomed.append((topic, partition))
        if doomed:
            try:
                await self._append(
                    [NewRecord(encode_offset_key(OffsetKey(group_id, t, p)), None,
                               self.clock.wall_ms()) for t, p in doomed]
                )  # fmt: skip
            except Exception as error:
                logger.error("deleting offsets of group %s failed: %s", group_id, error)
                return ErrorCode.kafka_storage_error, {}
            for key in doomed:
                self.offsets[group_id].pop(key, None)
        return ErrorCode.none, results

    # --- listing, describing, deleting ------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        return [
            GroupListing(group.group_id, group.protocol_type or "", group.state)
            for group in self.groups.values()
            if group.state is not GroupState.DEAD
        ]

    def describe_group(self, group_id: str) -> GroupDescription:
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, GroupState.DEAD, "", "", ())
        stable = group.state is GroupState.STABLE
        protocol = group.protocol_name or ""
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata_for(protocol) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            group_id, group.state, group.protocol_type or "", protocol if stable else "", members
        )

    async def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        results: dict[str, ErrorCode] = {}
        records: list[NewRecord] = []
        doomed: list[str] = []
        now_wall = self.clock.wall_ms()
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None or group.state is GroupState.DEAD:
                results[group_id] = ErrorCode.group_id_not_found
            elif group.state is not GroupState.EMPTY:
                results[group_id] = ErrorCode.non_empty_group
            else:
                results[group_id] = ErrorCode.none
                doomed.append(group_id)
                records.append(NewRecord(encode_group_key(GroupKey(group_id)), None, now_wall))
                records.extend(
                    NewRecord(encode_offset_key(OffsetKey(group_id, t, p)), None, now_wall)
                    for t, p in self.offsets.get(group_id, {})
                )
        if records:
            try:
                await self._append(records)
            except Exception as error:
                logger.error("deleting groups failed: %s", error)
                return {g: ErrorCode.kafka_storage_error if g in doomed else e
                        for g, e in results.items()}  # fmt: skip
        for group_id in doomed:
            group = self.groups.pop(group_id, None)
            if group is not None:
                group.transition(GroupState.DEAD)
            self.offsets.pop(group_id, None)
        return results

    async def expire_offsets(self) -> int:
        """KIP-211 offset retention: drop offsets of groups Empty for offsets.retention.minutes.

        Returns how many offsets were dropped. An Empty group left with no offsets goes Dead.
        """
        retention_ms = self.config["offsets.retention.minutes"] * 60_000
        now_wall = self.clock.wall_ms()
        records: list[NewRecord] = []
        doomed: list[tuple[str, TopicPartition]] = []
        dead: list[str] = []
        for group_id, committed in self.offsets.items():
            group = self.groups.get(group_id)
            if group is not None and group.state is not GroupState.EMPTY:
                continue
            since = group.empty_since_ms if group is not None and group.empty_since_ms else 0
            for key, value in committed.items():
                if max(since, value.commit_timestamp) + retention_ms <= now_wall:
                    doomed.append((group_id, key))
                    records.append(
                        NewRecord(encode_offset_key(OffsetKey(group_id, *key)), None, now_wall)
                    )
            if group is not None and len([d for d in doomed if d[0] == group_id]) == len(committed):
                dead.append(group_id)
                records.append(NewRecord(encode_group_key(GroupKey(group_id)), None, now_wall))
        for group_id, group in self.groups.items():
            # Groups that were joined once and left nothing behind (no members, no offsets)
            # go too, so abandoned group ids do not pile up.
            if (
                group.state is GroupState.EMPTY
                and not group.members
                and not group.pending_members
                and not self.offsets.get(group_id)
                and group_id not in dead
            ):
                dead.append(group_id)
                records.append(NewRecord(encode_group_key(GroupKey(group_id)), None, now_wall))
        if not records:
            return 0
        await self._append(records)
        for group_id, key in doomed:
            self.offsets.get(group_id, {}).pop(key, None)
        for group_id in dead:
            group = self.groups.pop(group_id, None)
            if group is not None:
                group.transition(GroupState.DEAD)
            self.offsets.pop(group_id, None)
        return len(doomed)

    # --- lag --------------------------------------------------------------------------------------

    def lag(self) -> list[GroupPartitionLag]:
        """Every group's committed offset against each partition's end, with lag in time."""
        now_wall = self.clock.wall_ms()
        out = []
        for group_id, committed in self.offsets.items():
            for (topic, index), value in sorted(committed.items()):
                partition = self.logs.partition(topic, index)
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
                out.append(
                    GroupPartitionLag(group_id, topic, index, value.offset, end, lag, seconds)
                )
        return out

    # --- persistence ------------------------------------------------------------------------------

    async def _append(self, records: list[NewRecord]) -> None:
        """Append records to __consumer_offsets and wait until they are fsynced."""
        assert self._partition is not None, "load() first"
        buffer = encode_batch(records)
        log = self._partition.log
        log.append(buffer, list(iter_batches(buffer, verify_crc=False)))
        self.appended.notify((OFFSETS_TOPIC, self._partition.index))
        await self.group_commit.sync([log])

    def _store_group_soon(self, group: ClassicGroup) -> None:
        """Persist the group's settled generation in the background (a lost write only means
        members rejoin after a restart; committed offsets never depend on it)."""
        value = self._group_value(group)
        record = NewRecord(
            encode_group_key(GroupKey(group.group_id)), encode_group_value(value),
            self.clock.wall_ms(),
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._store(group.group_id, record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store(self, group_id: str, record: NewRecord) -> None:
        try:
            await self._append([record])
        except Exception as error:
            logger.error("storing metadata of group %s failed: %s", group_id, error)

    def _group_value(self, group: ClassicGroup) -> GroupValue:
        protocol = group.protocol_name
        return GroupValue(
            group.protocol_type or "",
            group.generation,
            protocol,
            group.leader_id,
            self.clock.wall_ms(),
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

    async def wait_idle(self) -> None:
        """Let background metadata writes finish (before the logs are closed)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def record_timestamp(partition: Partition, offset: int) -> int | None:
    """The timestamp of the record at `offset` (or the first after it), if still in the log."""
    log = partition.log
    if not log.log_start_offset <= offset < log.log_end_offset:
        return None
    try:
        data = log.read(offset, 1)
        for header in iter_batches(data, verify_crc=False):
            if header.attributes & 0x08:  # LogAppendTime: the batch's stamp is every record's
                return header.max_timestamp
            for record in iter_records(data, header):
                if record.offset >= offset:
                    return record.timestamp
    except (InvalidRecordError, OSError):
        return None
    return None
