from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from millpond.coordinator.share_group import Assignment
from millpond.coordinator.share_group import HeartbeatResult
from millpond.coordinator.share_group import ShareGroup
from millpond.coordinator.share_group import simple_assignment

SESSION_MS = 45_000
ORDERS = uuid.UUID(int=1)
PAYMENTS = uuid.UUID(int=2)


class Topics:
    """A TopicLookup whose topics can be created and grown mid-test."""

    def __init__(self, **partitions: int) -> None:
        self.ids = {"orders": ORDERS, "payments": PAYMENTS}
        self.partitions = dict(partitions)

    def __call__(self, topic: str) -> tuple[uuid.UUID, int] | None:
        if topic not in self.partitions:
            return None
        return self.ids.get(topic, uuid.UUID(int=99)), self.partitions[topic]


def beat(
    group: ShareGroup,
    member: str,
    epoch: int,
    lookup: Topics,
    topics: list[str] | None = None,
    now: int = 0,
    rack: str | None = None,
) -> HeartbeatResult:
    return group.heartbeat(
        member, epoch, rack, topics, f"client-{member}", "10.0.0.1", now, SESSION_MS, lookup
    )


def join(group: ShareGroup, member: str, lookup: Topics, topics: list[str] | None = None) -> int:
    result = beat(group, member, 0, lookup, topics or ["orders"])
    assert result.error is ErrorCode.none
    return result.member_epoch


def assignment_of(result: HeartbeatResult) -> Assignment:
    assert result.assignment is not None
    return result.assignment


# -- joining ----------------------------------------------------------------------------------


def test_the_first_member_joins_with_every_partition() -> None:
    group, topics = ShareGroup("g"), Topics(orders=3)
    assert group.state == "Empty"
    result = beat(group, "m1", 0, topics, ["orders"])
    assert result.error is ErrorCode.none
    assert result.member_epoch >= 1
    assert result.assignment == {ORDERS: (0, 1, 2)}
    assert group.state == "Stable"
    assert group.subscribed_topics() == {"orders"}
    member = group.members["m1"]
    assert (member.client_id, member.client_host, member.epoch) == (
        "client-m1",
        "10.0.0.1",
        result.member_epoch,
    )


@pytest.mark.parametrize("subscription", [None, []])
def test_a_joining_member_must_subscribe(subscription: list[str] | None) -> None:
    group = ShareGroup("g")
    result = beat(group, "m1", 0, Topics(orders=1), subscription)
    assert result.error is ErrorCode.invalid_request
    assert group.members == {}
    assert group.epoch == 0


def test_a_member_subscribed_to_a_missing_topic_joins_with_nothing() -> None:
    group, topics = ShareGroup("g"), Topics()
    result = beat(group, "m1", 0, topics, ["orders"])
    assert result.error is ErrorCode.none
    assert result.member_epoch >= 1
    assert result.assignment == {}


def test_the_assignment_is_sent_only_when_it_changes() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2)
    epoch = join(group, "m1", topics)
    again = beat(group, "m1", epoch, topics, now=1_000)
    assert again == HeartbeatResult(ErrorCode.none, epoch, None)


# -- fencing ----------------------------------------------------------------------------------


def test_an_unknown_member_is_told_so() -> None:
    group, topics = ShareGroup("g"), Topics(orders=1)
    join(group, "m1", topics)
    result = beat(group, "ghost", 3, topics)
    assert result.error is ErrorCode.unknown_member_id
    assert "ghost" not in group.members


def test_an_epoch_from_the_future_is_fenced() -> None:
    group, topics = ShareGroup("g"), Topics(orders=1)
    epoch = join(group, "m1", topics)
    assert beat(group, "m1", epoch + 1, topics).error is ErrorCode.fenced_member_epoch


def test_the_previous_epoch_is_accepted_once_the_answer_was_lost() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2)
    old = join(group, "m1", topics)
    join(group, "m2", topics)
    moved = beat(group, "m1", old, topics)
    assert moved.error is ErrorCode.none
    assert moved.member_epoch > old
    assert moved.assignment == {ORDERS: (0,)}
    # The answer above was lost: the member still says `old`.
    retry = beat(group, "m1", old, topics)
    assert (retry.error, retry.member_epoch) == (ErrorCode.none, moved.member_epoch)
    assert beat(group, "m1", moved.member_epoch, topics).error is ErrorCode.none


def test_an_epoch_older_than_the_previous_one_is_fenced() -> None:
    group, topics = ShareGroup("g"), Topics(orders=3)
    first = join(group, "m1", topics)
    join(group, "m2", topics)
    second = beat(group, "m1", first, topics).member_epoch
    join(group, "m3", topics)
    third = beat(group, "m1", second, topics).member_epoch
    assert first < second < third
    result = beat(group, "m1", first, topics)
    assert (result.error, result.assignment) == (ErrorCode.fenced_member_epoch, None)


def test_a_fenced_member_rejoins_with_epoch_zero_and_its_own_id() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2)
    epoch = join(group, "m1", topics)
    assert beat(group, "m1", epoch + 5, topics).error is ErrorCode.fenced_member_epoch
    group_epoch = group.epoch
    rejoin = beat(group, "m1", 0, topics, ["orders"])
    assert rejoin.error is ErrorCode.none
    assert rejoin.member_epoch == epoch
    assert rejoin.assignment == {ORDERS: (0, 1)}  # full assignment again
    assert list(group.members) == ["m1"]
    assert group.epoch == group_epoch


def test_a_removed_member_is_unknown_until_it_joins_again() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2)
    epoch = join(group, "m1", topics)
    assert group.remove("m1", topics)
    assert not group.remove("m1", topics)
    assert group.state == "Empty"
    assert beat(group, "m1", epoch, topics).error is ErrorCode.unknown_member_id
    assert join(group, "m1", topics) > epoch


# -- rebalancing ------------------------------------------------------------------------------


def test_a_new_member_takes_partitions_and_the_others_hear_of_it() -> None:
    group, topics = ShareGroup("g"), Topics(orders=4)
    e1 = join(group, "m1", topics)
    second = beat(group, "m2", 0, topics, ["orders"])
    assert second.member_epoch > e1
    moved = beat(group, "m1", e1, topics)
    assert moved.member_epoch == second.member_epoch
    mine, theirs = assignment_of(moved)[ORDERS], assignment_of(second)[ORDERS]
    assert sorted(mine + theirs) == [0, 1, 2, 3]
    assert set(mine).isdisjoint(theirs)


def test_leaving_gives_the_partitions_to_the_others() -> None:
    group, topics = ShareGroup("g"), Topics(orders=3)
    e1 = join(group, "m1", topics)
    e2 = join(group, "m2", topics)
    e1 = beat(group, "m1", e1, topics).member_epoch
    assert group.remove("m2", topics)
    result = beat(group, "m1", e1, topics)
    assert result.member_epoch > e2
    assert result.assignment == {ORDERS: (0, 1, 2)}


def test_a_subscription_change_moves_the_group_epoch() -> None:
    group, topics = ShareGroup("g"), Topics(orders=1, payments=2)
    epoch = join(group, "m1", topics)
    result = beat(group, "m1", epoch, topics, ["orders", "payments"])
    assert result.member_epoch > epoch
    assert result.assignment == {ORDERS: (0,), PAYMENTS: (0, 1)}
    assert group.subscribed_topics() == {"orders", "payments"}
    same = beat(group, "m1", result.member_epoch, topics, ["orders", "payments"])
    assert (same.member_epoch, same.assignment) == (result.member_epoch, None)


def test_a_topic_that_appears_or_grows_is_assigned() -> None:
    group, topics = ShareGroup("g"), Topics()
    epoch = join(group, "m1", topics)
    topics.partitions["orders"] = 1
    created = beat(group, "m1", epoch, topics)
    assert created.member_epoch > epoch
    assert created.assignment == {ORDERS: (0,)}
    topics.partitions["orders"] = 3
    grown = beat(group, "m1", created.member_epoch, topics)
    assert grown.member_epoch > created.member_epoch
    assert grown.assignment == {ORDERS: (0, 1, 2)}


def test_only_subscribers_get_a_topics_partitions() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2, payments=2)
    join(group, "m1", topics, ["orders"])
    join(group, "m2", topics, ["payments"])
    assert group.members["m1"].assignment == {ORDERS: (0, 1)}
    assert group.members["m2"].assignment == {PAYMENTS: (0, 1)}


def test_heartbeats_keep_the_rack_unless_a_new_one_is_sent() -> None:
    group, topics = ShareGroup("g"), Topics(orders=1)
    beat(group, "m1", 0, topics, ["orders"], rack="r1")
    epoch = group.members["m1"].epoch
    beat(group, "m1", epoch, topics)
    assert group.members["m1"].rack_id == "r1"
    beat(group, "m1", epoch, topics, rack="r2")
    assert group.members["m1"].rack_id == "r2"


# -- liveness ---------------------------------------------------------------------------------


def test_members_expire_after_the_session_timeout() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2)
    e1 = beat(group, "m1", 0, topics, ["orders"], now=0).member_epoch
    beat(group, "m2", 0, topics, ["orders"], now=10_000)
    assert group.expired(SESSION_MS - 1) == []
    assert group.expired(SESSION_MS) == ["m1"]
    beat(group, "m1", e1, topics, now=20_000)
    assert group.expired(SESSION_MS) == []
    assert group.expired(10_000 + SESSION_MS) == ["m2"]
    assert sorted(group.expired(20_000 + SESSION_MS)) == ["m1", "m2"]


def test_a_refused_heartbeat_does_not_keep_a_member_alive() -> None:
    group, topics = ShareGroup("g"), Topics(orders=1)
    epoch = join(group, "m1", topics)
    beat(group, "m1", epoch + 1, topics, now=30_000)
    assert group.expired(SESSION_MS) == ["m1"]


# -- the assignor -----------------------------------------------------------------------------


@given(st.integers(0, 40), st.integers(0, 40))
def test_simple_assignment_balances(members: int, partitions: int) -> None:
    result = simple_assignment(members, partitions)
    assert len(result) == partitions
    per_member: dict[int, list[int]] = {m: [] for m in range(members)}
    for partition, readers in enumerate(result):
        assert len(readers) == len(set(readers))
        for member in readers:
            assert 0 <= member < members
            per_member[member].append(partition)
    if members == 0:
        assert all(readers == [] for readers in result)
    elif members <= partitions:
        assert all(len(readers) == 1 for readers in result)
        loads = [len(p) for p in per_member.values()]
        assert max(loads) - min(loads) <= 1
    else:
        if partitions == 0:
            assert result == []
            return
        assert all(len(p) == 1 for p in per_member.values())
        sizes = [len(readers) for readers in result]
        assert max(sizes) - min(sizes) <= 1


@given(
    st.lists(
        st.tuples(st.sampled_from(["join", "leave"]), st.integers(0, 7)),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 6),
)
def test_every_member_of_a_group_is_assigned_in_balance(
    steps: list[tuple[str, int]], partitions: int
) -> None:
    group, topics = ShareGroup("g"), Topics(orders=partitions)
    for action, index in steps:
        name = f"m{index}"
        if action == "join":
            assert beat(group, name, 0, topics, ["orders"]).error is ErrorCode.none
        else:
            present = name in group.members
            assert group.remove(name, topics) == present
    readers: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for member in group.members.values():
        assert member.assignment.keys() <= {ORDERS}
        for partition in member.assignment.get(ORDERS, ()):
            readers[partition].append(member.member_id)
    count = len(group.members)
    if count == 0:
        return
    if count <= partitions:
        assert all(len(names) == 1 for names in readers.values())
    else:
        assert all(len(m.assignment[ORDERS]) == 1 for m in group.members.values())
        assert all(names for names in readers.values())


def test_joining_members_take_turns_on_the_partitions() -> None:
    group, topics = ShareGroup("g"), Topics(orders=2)
    for name in ("m1", "m2", "m3"):
        join(group, name, topics)
    assignments = {name: m.assignment for name, m in group.members.items()}
    assert assignments == {
        "m1": {ORDERS: (0,)},
        "m2": {ORDERS: (1,)},
        "m3": {ORDERS: (0,)},
    }
