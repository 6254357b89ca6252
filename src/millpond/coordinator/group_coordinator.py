"""The classic group coordinator: membership and rebalances (committed offsets: offsets.py).

Follows Kafka's GroupCoordinator (see shared/notes/groups-and-idempotence.md §2-3). Parked
JoinGroup and SyncGroup calls are futures resolved when the rebalance moves on; timers are
deadlines on the injected clock, checked by `tick()`, which the broker calls every
`TICK_INTERVAL_MS` and tests call after advancing a FakeClock. Settled generations and
committed offsets are written to `__consumer_offsets` (metadata_log.py) and replayed from it
at start.
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
from millpond.coordinator.classic_group import ClassicGroup
from millpond.coordinator.classic_group import JoinResult
from millpond.coordinator.classic_group import Member
from millpond.coordinator.classic_group import SyncResult
from millpond.coordinator.group_state import GroupState
from millpond.coordinator.metadata_log import OFFSETS_TOPIC
from millpond.coordinator.metadata_log import GroupMetadataLog
from millpond.coordinator.metadata_log import decode_group
from millpond.coordinator.metadata_log import encode_group
from millpond.coordinator.offsets import OffsetManager
from millpond.coordinator.offsets_topic import CorruptRecordError
from millpond.coordinator.offsets_topic import OffsetKey
from millpond.coordinator.offsets_topic import decode_group_value
from millpond.coordinator.offsets_topic import decode_key
from millpond.coordinator.offsets_topic import decode_offset_value
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import Record
from millpond.storage.log_manager import LogManager

logger = logging.getLogger(__name__)

TICK_INTERVAL_MS = 100


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
        self.groups: dict[str, ClassicGroup] = {}
        self.metadata_log = GroupMetadataLog(config, clock, logs, group_commit, appended)
        self.offsets = OffsetManager(config, clock, logs, self.metadata_log, self.groups)

    # --- loading ------------------------------------------------------------------------------

    def load(self) -> int:
        """Create `__consumer_offsets` if needed and replay it; returns records replayed."""
        self.metadata_log.open()
        now = self.clock.monotonic_ms()
        replayed = 0
        for record in self.metadata_log.records():
            replayed += 1
            self._replay(record, now)
        return replayed

    def _replay(self, record: Record, now: int) -> None:
        if record.key is None:
            return
        try:
            key = decode_key(record.key)
            if isinstance(key, OffsetKey):
                value = None if record.value is None else decode_offset_value(record.value)
                self.offsets.replay(key.group, key.topic, key.partition, value)
            elif record.value is None:
                self.groups.pop(key.group, None)
            else:
                self.groups[key.group] = decode_group(
                    key.group, decode_group_value(record.value), now
                )
        except CorruptRecordError as error:
            # One damaged record must not keep the broker from starting.
            logger.warning(
                "skipping corrupt %s record at %d: %s", OFFSETS_TOPIC, record.offset, error
            )

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
        error = group.check_member(member_id, group_instance_id)
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
        old_leader = group.leader_id
        member = group.replace_static_member(old_id, f"{instance_id}-{uuid.uuid4()}")
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        member.session_deadline = now + session_timeout_ms
        if group.state is GroupState.STABLE and group.select_protocol() == group.protocol_name:
            # KIP-345: a returning static member takes its old place without a rebalance (its
            # subscription bytes may differ: owned partitions are not part of the decision).
            # The new member id is stored before the answer, or a crash would bring back the
            # old id and fence the member. The reply names the old leader id so the member does
            # not run an assignment.
            try:
                await self.metadata_log.append(
                    [
                        self.metadata_log.group_record(
                            group.group_id, encode_group(group, self.clock.wall_ms())
                        )
                    ]
                )
            except Exception as error:
                logger.error("storing static member %s failed: %s", instance_id, error)
                return JoinResult(ErrorCode.unknown_server_error, member_id="")
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
        joined = [m for m in group.members.values() if m.awaiting_join]
        if not joined and group.members:
            # Only static members are left and none rejoined yet: wait another rebalance
            # timeout for them (Kafka's new DelayedJoin); session expiry removes the gone ones.
            group.join_deadline = now + group.rebalance_timeout_ms()
            group.initial_delay_until = None
            return
        group.join_deadline = group.initial_delay_until = None
        group.generation += 1
        if not joined:
            for member in group.members.values():
                self._fail_waiters(member, ErrorCode.unknown_member_id)
            group.members.clear()
            group.static_members.clear()
            group.leader_id = None
            group.protocol_name = None
            group.transition(GroupState.EMPTY)
            group.empty_since_ms = self.clock.wall_ms()
            self.metadata_log.store_group_soon(group)
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
        error = group.check_member(member_id, group_instance_id)
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
            self.metadata_log.store_group_soon(group)
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
        error = group.check_member(member_id, group_instance_id)
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
            if member_id in group.pending_members:
                # A consumer closing right after MEMBER_ID_REQUIRED: forget the pending id, or
                # the rebalance would wait for it until it lapses.
                del group.pending_members[member_id]
                errors.append(ErrorCode.none)
                removed_any = True
                continue
            if not member_id and instance_id is not None:
                # The admin path: a static member named by its instance id alone.
                member_id = group.static_members.get(instance_id, "")
                if not member_id:
                    errors.append(ErrorCode.unknown_member_id)
                    continue
            error = group.check_member(member_id, instance_id)
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
                # Members parked in JoinGroup or SyncGroup are alive (Kafka's shouldKeepAlive);
                # the rebalance and sync deadlines bound how long they may wait.
                and not (group.state is GroupState.PREPARING_REBALANCE and member.awaiting_join)
                and not (group.state is GroupState.COMPLETING_REBALANCE and member.awaiting_sync)
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

    # --- listing, describing, deleting ------------------------------------------------------------

    def has_group(self, group_id: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and group.state is not GroupState.DEAD

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
        doomed: dict[str, ClassicGroup] = {}
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None or group.state is GroupState.DEAD:
                results[group_id] = ErrorCode.group_id_not_found
            elif group.state is not GroupState.EMPTY:
                results[group_id] = ErrorCode.non_empty_group
            else:
                results[group_id] = ErrorCode.none
                records.append(self.metadata_log.group_record(group_id, None))
                records.extend(self.offsets.tombstones(group_id))
                # Out of the map before the await: a join arriving meanwhile starts a new
                # group instead of parking on one about to vanish.
                doomed[group_id] = self.groups.pop(group_id)
        if not records:
            return results
        forgotten = {group_id: self.offsets.forget(group_id) for group_id in doomed}
        try:
            await self.metadata_log.append(records)
        except Exception as error:
            logger.error("deleting groups failed: %s", error)
            for group_id, group in doomed.items():
                self.groups.setdefault(group_id, group)
                self.offsets.committed.setdefault(group_id, forgotten[group_id])
            return {g: ErrorCode.kafka_storage_error if g in doomed else e
                    for g, e in results.items()}  # fmt: skip
        for group in doomed.values():
            group.transition(GroupState.DEAD)
        return results

    async def wait_idle(self) -> None:
        """Let background metadata writes finish (before the logs are closed)."""
        await self.metadata_log.wait_idle()
