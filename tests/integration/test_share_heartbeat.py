"""ShareGroupHeartbeat, ShareGroupDescribe and member liveness.

Share groups on the wire, as tests/support/share_wire.py describes.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from kio.schema.errors import ErrorCode
from kio.schema.join_group.v8 import request as join_group_v8
from kio.schema.offset_commit.v9 import request as offset_commit_v9
from kio.schema.share_group_describe.v1 import request as share_describe_v1

from tests.integration.test_wire import create_topic
from tests.support.server import BrokerProcess
from tests.support.server import running_broker
from tests.support.share_wire import EARLIEST
from tests.support.share_wire import ShareMember
from tests.support.share_wire import assigned
from tests.support.share_wire import heartbeat
from tests.support.share_wire import join
from tests.support.share_wire import partition_of
from tests.support.share_wire import produce_values
from tests.support.share_wire import ranges
from tests.support.share_wire import set_group_configs
from tests.support.share_wire import share_fetch
from tests.support.share_wire import topic_id
from tests.support.wire import WireClient

# -- ShareGroupHeartbeat ---------------------------------------------------------------------------


def test_join_gets_epoch_and_full_assignment_then_null_while_unchanged(
    broker: BrokerProcess,
) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "hb", partitions=2)
        tid = topic_id(client, "hb")
        joined = join(client, "hb-group", "member-a", "hb")
        assert joined.member_id == "member-a"
        assert joined.member_epoch >= 1
        assert joined.heartbeat_interval == datetime.timedelta(milliseconds=5000)
        assert assigned(joined) == {tid: {0, 1}}

        steady = heartbeat(client, "hb-group", "member-a", joined.member_epoch)
        assert steady.error_code == ErrorCode.none
        assert steady.member_epoch == joined.member_epoch
        assert steady.assignment is None

        # Rejoining with the same client-made member id gets the full assignment again.
        again = join(client, "hb-group", "member-a", "hb")
        assert assigned(again) == {tid: {0, 1}}


def test_heartbeat_errors(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "hb")
        epoch = join(client, "hb-group", "member-a", "hb").member_epoch

        fenced = heartbeat(client, "hb-group", "member-a", epoch + 1)
        assert fenced.error_code == ErrorCode.fenced_member_epoch
        assert fenced.member_id is None
        # Being fenced does not remove the member: its real epoch still works.
        assert heartbeat(client, "hb-group", "member-a", epoch).error_code == ErrorCode.none
        # An epoch older than the one before the current is fenced too; the one before is
        # accepted (the member may have missed our last answer).
        join(client, "hb-group", "member-b", "hb")
        second = heartbeat(client, "hb-group", "member-a", epoch)
        assert second.member_epoch > epoch
        join(client, "hb-group", "member-c", "hb")
        third = heartbeat(client, "hb-group", "member-a", second.member_epoch)
        assert third.member_epoch > second.member_epoch
        assert heartbeat(client, "hb-group", "member-a", second.member_epoch).error_code == (
            ErrorCode.none
        )
        assert heartbeat(client, "hb-group", "member-a", epoch).error_code == (
            ErrorCode.fenced_member_epoch
        )

        unknown = heartbeat(client, "hb-group", "member-z", 1)
        assert unknown.error_code == ErrorCode.unknown_member_id
        # A group this broker never saw: rejoin, not a fatal GROUP_ID_NOT_FOUND.
        assert heartbeat(client, "no-group", "member-a", 3).error_code == (
            ErrorCode.unknown_member_id
        )

        assert heartbeat(client, "hb-group", "", 0, ["hb"]).error_code == ErrorCode.invalid_request
        assert heartbeat(client, "hb-group", "  ", 0, ["hb"]).error_code == (
            ErrorCode.invalid_request
        )
        assert heartbeat(client, "hb-group", "m", 0, None).error_code == ErrorCode.invalid_request
        assert heartbeat(client, "hb-group", "m", 0, []).error_code == ErrorCode.invalid_request
        assert heartbeat(client, "hb-group", "m", 0, ["hb"], rack="").error_code == (
            ErrorCode.invalid_request
        )


def test_leave_answers_epoch_minus_one_and_frees_the_partition(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "hb", partitions=2)
        tid = topic_id(client, "hb")
        join(client, "hb-group", "member-a", "hb")
        b = join(client, "hb-group", "member-b", "hb")
        assert len(assigned(b)[tid]) == 1
        left = heartbeat(client, "hb-group", "member-a", -1)
        assert (left.error_code, left.member_epoch) == (ErrorCode.none, -1)
        # The remaining member now has both partitions.
        after = heartbeat(client, "hb-group", "member-b", b.member_epoch)
        assert after.error_code == ErrorCode.none
        assert assigned(after) == {tid: {0, 1}}
        # The one who left is unknown now.
        again = heartbeat(client, "hb-group", "member-a", left.member_epoch + 10)
        assert again.error_code == ErrorCode.unknown_member_id


def test_two_members_share_one_partition(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "one")
        tid = topic_id(client, "one")
        a = join(client, "g1", "member-a", "one")
        b = join(client, "g1", "member-b", "one")
        assert assigned(a) == {tid: {0}}
        assert assigned(b) == {tid: {0}}
        # A's set did not change when B arrived: its epoch moves on, its assignment is null.
        a_again = heartbeat(client, "g1", "member-a", a.member_epoch)
        assert a_again.error_code == ErrorCode.none
        assert a_again.member_epoch == b.member_epoch
        assert a_again.assignment is None


def test_two_members_split_two_partitions(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "two", partitions=2)
        tid = topic_id(client, "two")
        a = join(client, "g2", "member-a", "two")
        assert assigned(a) == {tid: {0, 1}}
        b = join(client, "g2", "member-b", "two")
        a_now = heartbeat(client, "g2", "member-a", a.member_epoch)
        assert a_now.error_code == ErrorCode.none
        a_parts, b_parts = assigned(a_now)[tid], assigned(b)[tid]
        assert len(a_parts) == len(b_parts) == 1
        assert a_parts | b_parts == {0, 1}


def test_classic_and_share_groups_do_not_share_ids(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "t")
        commit = offset_commit_v9.OffsetCommitRequest(
            group_id="classic",
            generation_id_or_member_epoch=-1,
            member_id="",
            group_instance_id=None,
            topics=(
                offset_commit_v9.OffsetCommitRequestTopic(
                    name="t",
                    partitions=(
                        offset_commit_v9.OffsetCommitRequestPartition(
                            partition_index=0,
                            committed_offset=0,
                            committed_leader_epoch=-1,
                            committed_metadata=None,
                        ),
                    ),
                ),
            ),
        )
        committed = client.call(commit).topics[0].partitions[0]
        assert committed.error_code == ErrorCode.none
        response = heartbeat(client, "classic", "member-a", 0, ["t"])
        assert response.error_code == ErrorCode.group_id_not_found

        join(client, "shared", "member-a", "t")
        refused = client.call(
            join_group_v8.JoinGroupRequest(
                group_id="shared",
                session_timeout=datetime.timedelta(seconds=10),
                rebalance_timeout=datetime.timedelta(seconds=10),
                member_id="",
                group_instance_id=None,
                protocol_type="consumer",
                protocols=(join_group_v8.JoinGroupRequestProtocol(name="range", metadata=b""),),
                reason=None,
            )
        )
        assert refused.error_code == ErrorCode.inconsistent_group_protocol


def test_share_group_describe_shows_members_and_assignment(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "d", partitions=2)
        tid = topic_id(client, "d")
        epoch = join(client, "dg", "member-a", "d").member_epoch
        response = client.call(
            share_describe_v1.ShareGroupDescribeRequest(
                group_ids=("dg", "nobody"), include_authorized_operations=False
            )
        )
        found, missing = response.groups
        assert found.error_code == ErrorCode.none
        assert found.group_state == "Stable"
        (member,) = found.members
        assert (member.member_id, member.member_epoch) == ("member-a", epoch)
        assert member.subscribed_topic_names == ("d",)
        (partitions,) = member.assignment.topic_partitions
        assert (partitions.topic_id, partitions.topic_name) == (tid, "d")
        assert set(partitions.partitions) == {0, 1}
        assert missing.error_code == ErrorCode.group_id_not_found


def test_broker_settings_drive_heartbeats_and_member_expiry(tmp_path: Path) -> None:
    settings = ("group.share.session.timeout.ms=1000", "group.share.heartbeat.interval.ms=300")
    with running_broker(tmp_path / "data", *settings) as broker:
        with WireClient(broker.bootstrap) as client:
            create_topic(client, "exp")
            key = (topic_id(client, "exp"), 0)
            set_group_configs(client, "expg", EARLIEST)
            produce_values(client, "exp", b"x")
        with (
            ShareMember(broker.bootstrap, "expg", "member-a") as a,
            ShareMember(broker.bootstrap, "expg", "member-b") as b,
        ):
            joined = a.join("exp")
            assert joined.heartbeat_interval == datetime.timedelta(milliseconds=300)
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, 1)]
            # A stops heartbeating: after the session timeout it is removed, its share session
            # closed and its records released (that delivery counted).
            started = time.monotonic()
            assert ranges(partition_of(b.fetch(key, max_wait_ms=5000), key)) == [(0, 0, 2)]
            assert 0.7 <= time.monotonic() - started < 4
            late = heartbeat(a.client, "expg", "member-a", joined.member_epoch)
            assert late.error_code == ErrorCode.unknown_member_id
            gone = share_fetch(a.client, "expg", "member-a", a.epoch, [key])
            assert gone.error_code == ErrorCode.share_session_not_found
