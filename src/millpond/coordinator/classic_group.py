"""A classic consumer group's members and its rebalance bookkeeping (Kafka's ClassicGroup).

Pure data and decisions: which protocol the members agree on, who leads, whether everyone has
rejoined. Waiting (parked JoinGroup/SyncGroup calls) is represented by futures the coordinator
shell resolves; time is always passed in as `now` (monotonic milliseconds).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from dataclasses import field

from kio.schema.errors import ErrorCode

from millpond.coordinator.group_state import GroupState
from millpond.coordinator.group_state import check_transition

CONSUMER_PROTOCOL_TYPE = "consumer"


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    # Only the leader gets the members: (member id, group instance id, metadata).
    members: tuple[tuple[str, str | None, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    session_deadline: int = 0
    assignment: bytes = b""
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata_for(self, protocol: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def same_protocols(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None and not self.join_future.done()

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_future is not None and not self.sync_future.done()


@dataclass(eq=False)
class ClassicGroup:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    # Member ids handed out with MEMBER_ID_REQUIRED, and when they lapse.
    pending_members: dict[str, int] = field(default_factory=dict)
    # When the current PreparingRebalance must end, and (initial delay) when it may end early.
    join_deadline: int | None = None
    initial_delay_until: int | None = None
    # When the members of a completed join must have sent SyncGroup.
    sync_deadline: int | None = None
    # Wall-clock ms when the group last became Empty (offset expiry counts from it).
    empty_since_ms: int | None = None

    def transition(self, target: GroupState) -> None:
        self.state = check_transition(self.state, target)

    @property
    def is_simple(self) -> bool:
        """A group only used for standalone commits (assign() consumers)."""
        return self.protocol_type is None and not self.members

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def check_member(self, member_id: str, group_instance_id: str | None) -> ErrorCode | None:
        """FENCED_INSTANCE_ID or UNKNOWN_MEMBER_ID, or None if `member_id` may speak."""
        if group_instance_id is not None:
            known = self.static_members.get(group_instance_id)
            if known is not None and known != member_id:
                return ErrorCode.fenced_instance_id
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        return None

    def add_member(self, member: Member) -> None:
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id

    def remove_member(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        if (
            member.group_instance_id is not None
            and self.static_members.get(member.group_instance_id) == member_id
        ):
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def replace_static_member(self, old_id: str, new_id: str) -> Member:
        """Give a returning static member a new id; it keeps its assignment (KIP-345)."""
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        assert member.group_instance_id is not None
        self.static_members[member.group_instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        return member

    def accepts(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Can a member with these protocols join? (INCONSISTENT_GROUP_PROTOCOL otherwise.)"""
        if not protocols or not protocol_type:
            return False
        if not self.members:
            return True
        if self.protocol_type is not None and protocol_type != self.protocol_type:
            return False
        names = {name for name, _ in protocols}
        return bool(names & self.candidate_protocols())

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = list(self.members.values())
        if not members:
            return set()
        common = set(members[0].protocol_names())
        for member in members[1:]:
            common &= set(member.protocol_names())
        return common

    def select_protocol(self) -> str:
        """Each member votes for its most preferred common protocol; the most votes win."""
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter()
        for member in self.members.values():
            for name in member.protocol_names():
                if name in candidates:
                    votes[name] += 1
                    break
        return max(votes, key=lambda name: votes[name])

    def all_members_joined(self) -> bool:
        return not self.pending_members and all(
            member.awaiting_join for member in self.members.values()
        )

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, or None if any subscription cannot be parsed."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or self.protocol_name is None:
            return None if self.members else set()
        topics: set[str] = set()
        for member in self.members.values():
            parsed = parse_subscription_topics(member.metadata_for(self.protocol_name))
            if parsed is None:
                return None
            topics |= parsed
        return topics


def parse_subscription_topics(metadata: bytes) -> set[str] | None:
    """Topics of a ConsumerProtocolSubscription (v0-3: int16 version, then int32 count of
    int16-length strings); trailing fields are ignored. None if it cannot be parsed."""
    try:
        position = 2
        count = int.from_bytes(metadata[position : position + 4], "big", signed=True)
        position += 4
        if count < 0 or len(metadata) < position:
            return None
        topics = set()
        for _ in range(count):
            length = int.from_bytes(metadata[position : position + 2], "big", signed=True)
            position += 2
            if length < 0 or position + length > len(metadata):
                return None
            topics.add(metadata[position : position + length].decode())
            position += length
        return topics
    except (UnicodeDecodeError, ValueError):
        return None
