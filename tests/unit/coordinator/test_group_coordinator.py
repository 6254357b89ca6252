"""The group coordinator on a real (temporary) data dir, driven with a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from typing import TypeVar

import pytest
from kio.schema.errors import ErrorCode

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.clock import FakeClock
from millpond.config import BrokerConfig
from millpond.coordinator.classic_group import JoinResult
from millpond.coordinator.group_coordinator import GroupCoordinator
from millpond.coordinator.group_state import GroupState
from millpond.coordinator.offsets import OffsetCommitEntry
from millpond.storage.log_manager import LogManager
from tests.support.batches import build_batch
from tests.support.batches import concat

T = TypeVar("T")
RANGE = [("range", b"\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x00")]  # subscribes to "t"


class Harness:
    def __init__(self, data_dir: Path, clock: FakeClock, **settings: str) -> None:
        values = {"group.initial.rebalance.delay.ms": "0"}
        values.update({key.replace("_", "."): value for key, value in settings.items()})
        self.config = BrokerConfig(values)
        self.clock = clock
        self.logs = LogManager(data_dir, self.config, clock)
        self.logs.startup()
        if "t" not in self.logs.topics:
            self.logs.create_topic("t", 2, {})
        self.coordinator = GroupCoordinator(
            self.config, clock, self.logs, GroupCommit(), AppendSignal()
        )
        self.replayed = self.coordinator.load()

    async def join(
        self, member_id: str = "", instance: str | None = None, protocols: Any = None,
        session_ms: int = 10_000, group: str = "g",
    ) -> JoinResult:  # fmt: skip
        return await self.coordinator.join_group(
            group, member_id, instance, "consumer", protocols or RANGE, session_ms, 30_000,
            "client", "/127.0.0.1", require_known_member_id=True,
        )  # fmt: skip

    async def join_new(self, **kwargs: Any) -> JoinResult:
        """A v4+ client: MEMBER_ID_REQUIRED, then the real join."""
        first = await self.join(**kwargs)
        if first.error == ErrorCode.member_id_required:
            return await self.join(first.member_id, **kwargs)
        return first

    def close(self) -> None:
        self.logs.shutdown()


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_first_member_leads_and_becomes_stable(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        first = await h.join()
        assert first.error == ErrorCode.member_id_required
        joined = await h.join(first.member_id)
        assert joined.error == ErrorCode.none
        assert (joined.generation, joined.leader, joined.protocol_name) == (
            1, first.member_id, "range",
        )  # fmt: skip
        assert [m[0] for m in joined.members] == [first.member_id]
        group = h.coordinator.groups["g"]
        assert group.state is GroupState.COMPLETING_REBALANCE
        synced = await h.coordinator.sync_group(
            "g", 1, first.member_id, None, "consumer", "range", {first.member_id: b"A"}
        )
        assert (synced.error, synced.assignment) == (ErrorCode.none, b"A")
        assert group.state is GroupState.STABLE
        assert h.coordinator.heartbeat("g", first.member_id, None, 1) == ErrorCode.none
        assert (
            h.coordinator.heartbeat("g", first.member_id, None, 0) == ErrorCode.illegal_generation
        )
        assert h.coordinator.heartbeat("g", "who", None, 1) == ErrorCode.unknown_member_id
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_second_member_triggers_rebalance_and_both_get_assignments(
    tmp_path: Path, clock: FakeClock
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join_new()
        await h.coordinator.sync_group("g", 1, a.member_id, None, None, None, {a.member_id: b"all"})
        b_task = asyncio.ensure_future(h.join_new())
        await settle()
        group = h.coordinator.groups["g"]
        assert group.state is GroupState.PREPARING_REBALANCE
        assert h.coordinator.heartbeat("g", a.member_id, None, 1) == ErrorCode.rebalance_in_progress
        a2 = await h.join(a.member_id)
        b = await b_task
        assert a2.generation == b.generation == 2
        assert a2.leader == a.member_id and len(a2.members) == 2 and b.members == ()
        follower = asyncio.ensure_future(
            h.coordinator.sync_group("g", 2, b.member_id, None, None, None, {})
        )
        await settle()
        assert not follower.done(), "followers wait for the leader's assignment"
        leader = await h.coordinator.sync_group(
            "g", 2, a.member_id, None, None, None, {a.member_id: b"p0", b.member_id: b"p1"}
        )
        assert leader.assignment == b"p0"
        assert (await follower).assignment == b"p1"
        assert group.state is GroupState.STABLE
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_expired_session_moves_partitions_to_the_others(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join_new(session_ms=6000)
        b_task = asyncio.ensure_future(h.join_new(session_ms=20_000))
        await settle()
        await h.join(a.member_id, session_ms=6000)
        b = await b_task
        await h.coordinator.sync_group("g", 2, a.member_id, None, None, None, {})
        await h.coordinator.sync_group("g", 2, b.member_id, None, None, None, {})
        clock.advance(5000)
        assert h.coordinator.heartbeat("g", b.member_id, None, 2) == ErrorCode.none
        clock.advance(2000)  # a is silent past its 6 s session
        h.coordinator.tick()
        group = h.coordinator.groups["g"]
        assert a.member_id not in group.members
        assert group.state is GroupState.PREPARING_REBALANCE
        assert h.coordinator.heartbeat("g", b.member_id, None, 2) == ErrorCode.rebalance_in_progress
        rejoined = await h.join(b.member_id, session_ms=20_000)
        assert (rejoined.generation, rejoined.leader) == (3, b.member_id)
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_leave_empties_the_group(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join_new()
        await h.coordinator.sync_group("g", 1, a.member_id, None, None, None, {})
        assert h.coordinator.leave_group("g", [(a.member_id, None)]) == [ErrorCode.none]
        group = h.coordinator.groups["g"]
        assert group.state is GroupState.EMPTY
        assert group.generation == 2
        assert h.coordinator.leave_group("g", [("ghost", None)]) == [ErrorCode.unknown_member_id]
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_inconsistent_protocols_are_refused(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join_new()
        await h.coordinator.sync_group("g", 1, a.member_id, None, None, None, {})
        other = await h.join(protocols=[("roundrobin", b"")])
        assert other.error == ErrorCode.inconsistent_group_protocol
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_protocol_vote(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        both = [("roundrobin", b""), ("range", b"")]
        a = await h.join_new(protocols=both)
        await h.coordinator.sync_group("g", 1, a.member_id, None, None, None, {})
        b_task = asyncio.ensure_future(h.join_new(protocols=[("range", b""), ("roundrobin", b"")]))
        c_task = asyncio.ensure_future(h.join_new(protocols=[("range", b""), ("roundrobin", b"")]))
        await settle()
        a2 = await h.join(a.member_id, protocols=both)
        await b_task
        await c_task
        assert a2.protocol_name == "range"  # two votes to one
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_static_member_returns_without_rebalance(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join(instance="host-1")
        assert a.error == ErrorCode.none, "static members never get MEMBER_ID_REQUIRED"
        await h.coordinator.sync_group(
            "g", 1, a.member_id, "host-1", None, None, {a.member_id: b"x"}
        )
        again = await h.join(instance="host-1")
        assert again.error == ErrorCode.none
        assert again.generation == 1, "no rebalance"
        assert again.member_id != a.member_id
        group = h.coordinator.groups["g"]
        assert group.state is GroupState.STABLE
        assert (
            h.coordinator.heartbeat("g", a.member_id, "host-1", 1) == ErrorCode.fenced_instance_id
        )
        synced = await h.coordinator.sync_group("g", 1, again.member_id, "host-1", None, None, {})
        assert synced.assignment == b"x", "the replacement inherits the assignment"
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_initial_rebalance_delay_waits_for_more_members(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock, group_initial_rebalance_delay_ms="3000")
        a_task = asyncio.ensure_future(h.join_new())
        await settle()
        clock.advance(1000)
        h.coordinator.tick()
        assert not a_task.done()
        b_task = asyncio.ensure_future(h.join_new())
        await settle()
        clock.advance(2500)
        h.coordinator.tick()
        assert not a_task.done(), "a new joiner extends the delay"
        clock.advance(600)
        h.coordinator.tick()
        a, b = await a_task, await b_task
        assert a.generation == b.generation == 1
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def commit(h: Harness, group: str, generation: int, member: str, *offsets: tuple[int, int]) -> Any:
    entries = [OffsetCommitEntry("t", p, o, -1, "meta") for p, o in offsets]
    return h.coordinator.offsets.commit(group, generation, member, None, entries)


def test_offsets_rules_and_restart(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        assert await commit(h, "solo", -1, "", (0, 5), (1, 7)) == {
            ("t", 0): ErrorCode.none, ("t", 1): ErrorCode.none,
        }  # fmt: skip
        assert await commit(h, "nobody", 3, "m", (0, 1)) == {("t", 0): ErrorCode.illegal_generation}
        bad = [OffsetCommitEntry("t", 9, 1, -1, None), OffsetCommitEntry("t", 0, 1, -1, "x" * 5000)]
        assert await h.coordinator.offsets.commit("solo", -1, "", None, bad) == {
            ("t", 9): ErrorCode.unknown_topic_or_partition,
            ("t", 0): ErrorCode.offset_metadata_too_large,
        }
        a = await h.join_new(group="live")
        assert await commit(h, "live", 0, a.member_id, (0, 1)) == {
            ("t", 0): ErrorCode.illegal_generation
        }
        assert await commit(h, "live", 1, a.member_id, (0, 1)) == {
            ("t", 0): ErrorCode.rebalance_in_progress
        }
        await h.coordinator.sync_group(
            "live", 1, a.member_id, None, None, None, {a.member_id: b"z"}
        )
        assert await commit(h, "live", 1, a.member_id, (0, 42)) == {("t", 0): ErrorCode.none}
        await h.coordinator.wait_idle()
        h.close()

        again = Harness(tmp_path, clock)
        fetched = again.coordinator.offsets.fetch("solo", None)
        assert [(t, p, v.offset if v else None) for t, p, v in fetched] == [
            ("t", 0, 5),
            ("t", 1, 7),
        ]
        assert again.coordinator.offsets.fetch("live", [("t", [0, 1])])[0][2].offset == 42  # type: ignore[union-attr]
        assert again.coordinator.offsets.fetch("live", [("t", [1])])[0][2] is None
        live = again.coordinator.groups["live"]
        assert live.state is GroupState.STABLE, "group metadata survives a restart"
        assert again.coordinator.heartbeat("live", a.member_id, None, 1) == ErrorCode.none
        again.close()

    run(scenario())


def test_delete_groups_and_offset_expiry(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock, offsets_retention_minutes="1")
        await commit(h, "old", -1, "", (0, 1))
        a = await h.join_new(group="busy")
        results = await h.coordinator.delete_groups(["old", "busy", "ghost"])
        assert results == {
            "old": ErrorCode.none,
            "busy": ErrorCode.non_empty_group,
            "ghost": ErrorCode.group_id_not_found,
        }
        assert h.coordinator.offsets.fetch("old", None) == []
        await commit(h, "stale", -1, "", (1, 3))
        clock.advance(59_000)
        assert await h.coordinator.offsets.expire() == 0
        clock.advance(2_000)
        assert await h.coordinator.offsets.expire() == 1
        assert "stale" not in h.coordinator.groups
        assert a.member_id in h.coordinator.groups["busy"].members
        await h.coordinator.wait_idle()
        h.close()
        again = Harness(tmp_path, clock)
        assert "old" not in again.coordinator.groups
        assert again.coordinator.offsets.fetch("stale", None) == []
        again.close()

    run(scenario())


def test_lag_in_messages_and_seconds(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        log = h.logs.partition("t", 0)
        assert log is not None
        stamp = clock.wall_ms() - 30_000
        records, headers = concat(
            build_batch([b"a", b"b", b"c"], timestamps=[stamp, stamp + 1000, stamp + 2000])
        )
        log.log.append(records, headers)
        await commit(h, "reader", -1, "", (0, 1))
        [lag] = h.coordinator.offsets.lag()
        assert (lag.group, lag.partition, lag.committed_offset, lag.log_end_offset) == (
            "reader",
            0,
            1,
            3,
        )
        assert lag.lag_messages == 2
        assert lag.lag_seconds == pytest.approx(29.0)
        await commit(h, "reader", -1, "", (0, 3))
        [caught_up] = h.coordinator.offsets.lag()
        assert (caught_up.lag_messages, caught_up.lag_seconds) == (0, None)
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_abandoned_empty_groups_are_removed(tmp_path: Path, clock: FakeClock) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        first = await h.join(group="abandoned")
        assert first.error == ErrorCode.member_id_required
        clock.advance(11_000)  # the pending member id lapses (session timeout 10 s)
        h.coordinator.tick()
        assert "abandoned" in h.coordinator.groups
        await h.coordinator.offsets.expire()
        assert "abandoned" not in h.coordinator.groups
        await commit(h, "kept", -1, "", (0, 1))
        await h.coordinator.offsets.expire()
        assert "kept" in h.coordinator.groups, "a group with offsets stays"
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_a_corrupt_internal_record_is_skipped_not_fatal(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from millpond.protocol.record_codec import NewRecord

    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        await commit(h, "before", -1, "", (0, 3))
        await h.coordinator.metadata_log.append(
            [NewRecord(b"\x00\x09not a key", b"junk", clock.wall_ms()),
             NewRecord(b"\x00\x01\x00\x01g", b"\x00\x03", clock.wall_ms())]
        )  # fmt: skip
        await commit(h, "after", -1, "", (1, 4))
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())
    again = Harness(tmp_path, clock)
    assert again.coordinator.offsets.fetch("before", [("t", [0])])[0][2] is not None
    assert again.coordinator.offsets.fetch("after", [("t", [1])])[0][2] is not None
    assert "skipping corrupt __consumer_offsets record" in caplog.text
    again.close()


def test_a_follower_waiting_for_a_slow_leader_is_not_expired(
    tmp_path: Path, clock: FakeClock
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join_new(session_ms=30_000)
        await h.coordinator.sync_group("g", 1, a.member_id, None, None, None, {})
        b_task = asyncio.ensure_future(h.join_new(session_ms=6000))
        await settle()
        await h.join(a.member_id, session_ms=30_000)
        b = await b_task
        follower = asyncio.ensure_future(
            h.coordinator.sync_group("g", 2, b.member_id, None, None, None, {})
        )
        await settle()
        clock.advance(7000)  # past the follower's session while it waits in SyncGroup
        h.coordinator.tick()
        assert b.member_id in h.coordinator.groups["g"].members
        await h.coordinator.sync_group(
            "g", 2, a.member_id, None, None, None, {a.member_id: b"a", b.member_id: b"b"}
        )
        assert (await follower).assignment == b"b"
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_static_member_with_new_subscription_bytes_keeps_its_place(
    tmp_path: Path, clock: FakeClock
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join(instance="host-1")
        await h.coordinator.sync_group(
            "g", 1, a.member_id, "host-1", None, None, {a.member_id: b"x"}
        )
        changed = [("range", RANGE[0][1] + b"owned-partitions")]
        again = await h.join(instance="host-1", protocols=changed)
        assert (again.error, again.generation) == (ErrorCode.none, 1)
        assert h.coordinator.groups["g"].state is GroupState.STABLE
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_leaving_with_a_pending_member_id_does_not_stall_the_rebalance(
    tmp_path: Path, clock: FakeClock
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join_new()
        await h.coordinator.sync_group("g", 1, a.member_id, None, None, None, {})
        pending = await h.join()
        assert pending.error == ErrorCode.member_id_required
        assert h.coordinator.leave_group("g", [(pending.member_id, None)]) == [ErrorCode.none]
        assert not h.coordinator.groups["g"].pending_members
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())


def test_static_members_that_have_not_rejoined_are_waited_for(
    tmp_path: Path, clock: FakeClock
) -> None:
    async def scenario() -> None:
        h = Harness(tmp_path, clock)
        a = await h.join(instance="host-1", session_ms=60_000)
        await h.coordinator.sync_group("g", 1, a.member_id, "host-1", None, None, {})
        group = h.coordinator.groups["g"]
        h.coordinator.leave_group("g", [])  # nothing
        # Force a rebalance the static member does not answer in time.
        h.coordinator._prepare_rebalance(group, clock.monotonic_ms(), "test")
        clock.advance(31_000)  # past the 30 s rebalance timeout
        h.coordinator.tick()
        assert group.state is GroupState.PREPARING_REBALANCE
        assert a.member_id in group.members, "kept for its session, not wiped"
        back = await h.join(a.member_id, instance="host-1", session_ms=60_000)
        assert back.error == ErrorCode.none and back.generation == 2
        await h.coordinator.wait_idle()
        h.close()

    run(scenario())
