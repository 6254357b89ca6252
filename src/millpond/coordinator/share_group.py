"""A share group's membership and assignment (KIP-932 heartbeats). Pure: times are passed in.

    member epoch 0  -> join (or rejoin with the same client-made member id)
    member epoch -1 -> leave
    member epoch n  -> heartbeat; n must be the member's epoch (or the one before, when our
                       last answer was lost), else FENCED_MEMBER_EPOCH

The broker assigns: a change of members, subscriptions or partition counts bumps the group
epoch and recomputes every member's partitions at once. There is no revocation handshake, so a
member's epoch jumps straight to the group's and a new partition set simply replaces the old.
An assignment goes out on a join and whenever the member's set changes; otherwise null.

Assignment ("simple", as Kafka's): with M members and P partitions of a topic, M <= P gives
each partition exactly one member; M > P shares partitions so that every member gets one.
Members keep their order of arrival, so a newcomer moves as little as possible.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from kio.schema.errors import ErrorCode

# topic name -> (topic id, partition count), or None when the topic does not exist
TopicLookup = Callable[[str], tuple[uuid.UUID, int] | None]
Assignment = dict[uuid.UUID, tuple[int, ...]]


@dataclass(slots=True)
class ShareMember:
    member_id: str
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed: tuple[str, ...]
    deadline_ms: int
    epoch: int = 0
    previous_epoch: int = 0
    assignment: Assignment = field(default_factory=dict)
    # What this member was last told, so an unchanged set is answered with null.
    sent: Assignment | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode
    member_epoch: int
    # None = unchanged since the member last heard it
    assignment: Assignment | None = None
    message: str | None = None


class ShareGroup:
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ShareMember] = {}
        # (topic, id, partitions) of every subscribed topic when the assignment was computed
        self._metadata: tuple[tuple[str, uuid.UUID, int], ...] = ()

    @property
    def state(self) -> str:
        return "Stable" if self.members else "Empty"

    def subscribed_topics(self) -> set[str]:
        return {topic for member in self.members.values() for topic in member.subscribed}

    def heartbeat(
        self,
        member_id: str,
        member_epoch: int,
        rack_id: str | None,
        topics: list[str] | None,
        client_id: str,
        client_host: str,
        now_ms: int,
        session_timeout_ms: int,
        lookup: TopicLookup,
    ) -> HeartbeatResult:
        member = self.members.get(member_id)
        if member_epoch == 0:
            if not topics:
                return HeartbeatResult(
                    ErrorCode.invalid_request, 0, message="a joining member must subscribe"
                )
            if member is None:
                member = ShareMember(member_id, client_id, client_host, rack_id, tuple(topics), 0)
                self.members[member_id] = member
                self.epoch += 1
            member.sent = None  # a (re)joining member gets its full assignment
        elif member is None:
            return HeartbeatResult(
                ErrorCode.unknown_member_id, 0, message=f"member {member_id} is not in the group"
            )
        elif member_epoch not in (member.epoch, member.previous_epoch):
            return HeartbeatResult(
                ErrorCode.fenced_member_epoch,
                0,
                message=f"epoch {member_epoch} is not the member's epoch {member.epoch}",
            )
        member.deadline_ms = now_ms + session_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        if rack_id is not None:
            member.rack_id = rack_id
        if topics is not None and tuple(topics) != member.subscribed:
            member.subscribed = tuple(topics)
            self.epoch += 1
        self._refresh(lookup)
        if member.epoch != self.assignment_epoch:
            member.previous_epoch = member.epoch
            member.epoch = self.assignment_epoch
        changed = member.sent != member.assignment
        if changed:
            member.sent = dict(member.assignment)
        return HeartbeatResult(
            ErrorCode.none, member.epoch, dict(member.assignment) if changed else None
        )

    def remove(self, member_id: str, lookup: TopicLookup) -> bool:
        """Leave or expiry; returns whether the member was here."""
        if self.members.pop(member_id, None) is None:
            return False
        self.epoch += 1
        self._refresh(lookup)
        return True

    def expired(self, now_ms: int) -> list[str]:
        return [m.member_id for m in self.members.values() if m.deadline_ms <= now_ms]

    def _refresh(self, lookup: TopicLookup) -> None:
        """Recompute assignments when the epoch moved or a subscribed topic changed shape."""
        metadata = []
        for topic in sorted(self.subscribed_topics()):
            found = lookup(topic)
            if found is not None:
                metadata.append((topic, found[0], found[1]))
        shape = tuple(metadata)
        if shape != self._metadata:
            self._metadata = shape
            self.epoch += 1
        if self.assignment_epoch == self.epoch:
            return
        for member in self.members.values():
            member.assignment = {}
        for topic, topic_id, count in shape:
            readers = [m for m in self.members.values() if topic in m.subscribed]
            for partition, members in enumerate(simple_assignment(len(readers), count)):
                for index in members:
                    assigned = readers[index].assignment.setdefault(topic_id, ())
                    readers[index].assignment[topic_id] = (*assigned, partition)
        self.assignment_epoch = self.epoch


def simple_assignment(members: int, partitions: int) -> list[list[int]]:
    """For each partition, the indexes of the members that read it."""
    result: list[list[int]] = [[] for _ in range(partitions)]
    if members == 0 or partitions == 0:
        return result
    if members <= partitions:
        for partition in range(partitions):
            result[partition].append(partition % members)
    else:
        for member in range(members):
            result[member % partitions].append(member)
    return result
