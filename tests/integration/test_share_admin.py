"""Group configs, share-group offsets administration, listing, deleting, restarts.

Share groups on the wire, as tests/support/share_wire.py describes.
"""

from __future__ import annotations

from typing import Any

import pytest
from kio.schema.alter_share_group_offsets.v0 import request as alter_offsets_v0
from kio.schema.delete_groups.v2 import request as delete_groups_v2
from kio.schema.delete_share_group_offsets.v0 import request as delete_offsets_v0
from kio.schema.describe_share_group_offsets.v1 import request as describe_offsets_v1
from kio.schema.errors import ErrorCode
from kio.schema.list_groups.v5 import request as list_groups_v5

from tests.integration.test_wire import create_topic
from tests.support.server import BrokerProcess
from tests.support.share_wire import ACCEPT
from tests.support.share_wire import DEFAULT_CONFIG
from tests.support.share_wire import DYNAMIC_GROUP_CONFIG
from tests.support.share_wire import EARLIEST
from tests.support.share_wire import RELEASE
from tests.support.share_wire import PartitionKey
from tests.support.share_wire import ShareMember
from tests.support.share_wire import ack_code
from tests.support.share_wire import acquired_offsets
from tests.support.share_wire import acquired_values
from tests.support.share_wire import alter_group_configs
from tests.support.share_wire import fresh
from tests.support.share_wire import group_configs
from tests.support.share_wire import heartbeat
from tests.support.share_wire import join
from tests.support.share_wire import partition_of
from tests.support.share_wire import produce_values
from tests.support.share_wire import ranges
from tests.support.share_wire import set_group_configs
from tests.support.share_wire import topic_id
from tests.support.wire import WireClient

# -- group configs ---------------------------------------------------------------------------------


def test_describe_group_configs_shows_defaults_and_overrides(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        defaults = group_configs(client, "cfg")
        assert set(defaults) == {
            "share.auto.offset.reset",
            "share.isolation.level",
            "share.record.lock.duration.ms",
            "share.delivery.count.limit",
            "share.partition.max.record.locks",
            "share.session.timeout.ms",
            "share.heartbeat.interval.ms",
            "errors.deadletterqueue.topic.name",
        }
        assert defaults["errors.deadletterqueue.topic.name"].value == "dlq.cfg"
        assert defaults["share.auto.offset.reset"].value == "latest"
        assert defaults["share.record.lock.duration.ms"].value == "30000"
        assert defaults["share.delivery.count.limit"].value == "5"
        assert {entry.config_source for entry in defaults.values()} == {DEFAULT_CONFIG}

        set_group_configs(client, "cfg", {"share.record.lock.duration.ms": "5000", **EARLIEST})
        changed = group_configs(client, "cfg")
        assert changed["share.record.lock.duration.ms"].value == "5000"
        assert changed["share.record.lock.duration.ms"].config_source == DYNAMIC_GROUP_CONFIG
        assert changed["share.auto.offset.reset"].value == "earliest"
        assert changed["share.delivery.count.limit"].config_source == DEFAULT_CONFIG
        # Another group keeps the defaults.
        assert group_configs(client, "other")["share.auto.offset.reset"].value == "latest"

        set_group_configs(client, "cfg", {"share.record.lock.duration.ms": None})
        assert group_configs(client, "cfg")["share.record.lock.duration.ms"].value == "30000"


@pytest.mark.parametrize(
    "changes",
    [
        {"share.no.such.key": "1"},
        {"share.delivery.count.limit": "1"},
        {"share.delivery.count.limit": "lots"},
        {"share.record.lock.duration.ms": "999"},
        {"share.auto.offset.reset": "sometime"},
        {"errors.deadletterqueue.topic.name": "__internal"},
        # One good change with a bad one: neither is applied.
        {"share.auto.offset.reset": "earliest", "share.delivery.count.limit": "11"},
    ],
)
def test_bad_group_configs_are_invalid_config_and_change_nothing(
    shared_broker: BrokerProcess, changes: dict[str, str | None]
) -> None:
    group = fresh("cfg")
    with WireClient(shared_broker.bootstrap) as client:
        set_group_configs(client, group, {"share.delivery.count.limit": "3"})
        before = {name: entry.value for name, entry in group_configs(client, group).items()}
        result = alter_group_configs(client, group, changes)
        assert result.error_code == ErrorCode.invalid_config, result
        after = {name: entry.value for name, entry in group_configs(client, group).items()}
        assert after == before


def test_auto_offset_reset_latest_by_default_earliest_when_set(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "old")
        key = (topic_id(client, "old"), 0)
        produce_values(client, "old", b"1", b"2", b"3")
        set_group_configs(client, "early", EARLIEST)
        with (
            ShareMember(shared_broker.bootstrap, "late", "member-a") as late,
            ShareMember(shared_broker.bootstrap, "early", "member-a") as early,
        ):
            assert ranges(partition_of(late.fetch(key), key)) == []
            assert acquired_offsets(partition_of(early.fetch(key), key)) == [0, 1, 2]
            produce_values(client, "old", b"4")
            assert acquired_values(partition_of(late.fetch(key), key)) == {3: b"4"}


# -- offsets administration ------------------------------------------------------------------------


def describe_offsets(
    client: WireClient, group: str, topic: str | None = None, partitions: tuple[int, ...] = (0,)
) -> Any:
    topics = (
        None
        if topic is None
        else (
            describe_offsets_v1.DescribeShareGroupOffsetsRequestTopic(
                topic_name=topic, partitions=partitions
            ),
        )
    )
    request = describe_offsets_v1.DescribeShareGroupOffsetsRequest(
        groups=(
            describe_offsets_v1.DescribeShareGroupOffsetsRequestGroup(
                group_id=group, topics=topics
            ),
        )
    )
    return client.call(request).groups[0]


def alter_offsets(client: WireClient, group: str, topic: str, start: int) -> Any:
    request = alter_offsets_v0.AlterShareGroupOffsetsRequest(
        group_id=group,
        topics=(
            alter_offsets_v0.AlterShareGroupOffsetsRequestTopic(
                topic_name=topic,
                partitions=(
                    alter_offsets_v0.AlterShareGroupOffsetsRequestPartition(
                        partition_index=0, start_offset=start
                    ),
                ),
            ),
        ),
    )
    return client.call(request)


def delete_offsets(client: WireClient, group: str, topic: str) -> Any:
    request = delete_offsets_v0.DeleteShareGroupOffsetsRequest(
        group_id=group,
        topics=(delete_offsets_v0.DeleteShareGroupOffsetsRequestTopic(topic_name=topic),),
    )
    return client.call(request)


def _accept_first_two(bootstrap: str, group: str, key: PartitionKey) -> None:
    with ShareMember(bootstrap, group, "worker") as worker:
        assert acquired_offsets(partition_of(worker.fetch(key), key)) == [0, 1, 2, 3, 4]
        acked = worker.acknowledge({key: [(0, 1, (ACCEPT,)), (2, 4, (RELEASE,))]})
        assert ack_code(acked, key) == ErrorCode.none
        worker.close_session()


def test_describe_share_group_offsets_shows_start_offset_and_lag(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "off")
        key = (topic_id(client, "off"), 0)
        set_group_configs(client, "offg", EARLIEST)
        produce_values(client, "off", b"1", b"2", b"3", b"4", b"5")
        _accept_first_two(shared_broker.bootstrap, "offg", key)
        for group in (describe_offsets(client, "offg", "off"), describe_offsets(client, "offg")):
            assert group.error_code == ErrorCode.none
            (topic,) = group.topics
            assert (topic.topic_name, topic.topic_id) == ("off", key[0])
            (partition,) = topic.partitions
            assert (partition.partition_index, partition.start_offset, partition.lag) == (0, 2, 3)
        unknown = describe_offsets(client, "nobody", "off")
        assert unknown.error_code == ErrorCode.group_id_not_found


def test_alter_share_group_offsets_needs_an_empty_group_then_resets(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "alt")
        key = (topic_id(client, "alt"), 0)
        set_group_configs(client, "altg", EARLIEST)
        produce_values(client, "alt", b"1", b"2", b"3", b"4", b"5")
        _accept_first_two(shared_broker.bootstrap, "altg", key)
        join(client, "altg", "member-a", "alt")
        busy = alter_offsets(client, "altg", "alt", 4)
        assert busy.error_code == ErrorCode.non_empty_group
        assert busy.responses[0].partitions[0].error_code == ErrorCode.non_empty_group
        assert describe_offsets(client, "altg", "alt").topics[0].partitions[0].start_offset == 2

        assert heartbeat(client, "altg", "member-a", -1).error_code == ErrorCode.none
        reset = alter_offsets(client, "altg", "alt", 4)
        assert reset.error_code == ErrorCode.none
        assert reset.responses[0].partitions[0].error_code == ErrorCode.none
        (partition,) = describe_offsets(client, "altg", "alt").topics[0].partitions
        assert (partition.start_offset, partition.lag) == (4, 1)
        with ShareMember(shared_broker.bootstrap, "altg", "member-b") as b:
            assert acquired_values(partition_of(b.fetch(key), key)) == {4: b"5"}

        assert alter_offsets(client, "nobody", "alt", 0).error_code == (
            ErrorCode.group_id_not_found
        )


def test_delete_share_group_offsets_forgets_the_partition(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "del")
        key = (topic_id(client, "del"), 0)
        set_group_configs(client, "delg", EARLIEST)
        produce_values(client, "del", b"1", b"2", b"3", b"4", b"5")
        _accept_first_two(shared_broker.bootstrap, "delg", key)
        join(client, "delg", "member-a", "del")
        assert delete_offsets(client, "delg", "del").error_code == ErrorCode.non_empty_group
        assert heartbeat(client, "delg", "member-a", -1).error_code == ErrorCode.none

        deleted = delete_offsets(client, "delg", "del")
        assert deleted.error_code == ErrorCode.none
        assert deleted.responses[0].error_code == ErrorCode.none
        assert describe_offsets(client, "delg").topics == ()
        (partition,) = describe_offsets(client, "delg", "del").topics[0].partitions
        assert (partition.start_offset, partition.lag) == (-1, -1)
        # The group starts over by share.auto.offset.reset (earliest here): offset 0 again.
        with ShareMember(shared_broker.bootstrap, "delg", "member-b") as b:
            assert ranges(partition_of(b.fetch(key), key)) == [(0, 4, 1)]


def list_groups(client: WireClient, *types: str) -> dict[str, Any]:
    request = list_groups_v5.ListGroupsRequest(states_filter=(), types_filter=types)
    response = client.call(request)
    assert response.error_code == ErrorCode.none
    return {group.group_id: group for group in response.groups}


def test_list_groups_v5_filters_share_groups(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "lg")
        join(client, "sharing", "member-a", "lg")
        shares = list_groups(client, "share")
        assert set(shares) == {"sharing"}
        assert (shares["sharing"].group_type, shares["sharing"].protocol_type) == (
            "share",
            "share",
        )
        assert shares["sharing"].group_state == "Stable"
        assert "sharing" not in list_groups(client, "classic")
        assert "sharing" in list_groups(client)


def test_delete_groups_removes_only_an_empty_share_group(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "dg")
        set_group_configs(client, "gone", {"share.delivery.count.limit": "3"})
        join(client, "gone", "member-a", "dg")

        def delete() -> int:
            request = delete_groups_v2.DeleteGroupsRequest(groups_names=("gone",))
            return int(client.call(request).results[0].error_code)

        assert delete() == ErrorCode.non_empty_group
        assert heartbeat(client, "gone", "member-a", -1).error_code == ErrorCode.none
        assert delete() == ErrorCode.none
        assert "gone" not in list_groups(client, "share")
        assert describe_offsets(client, "gone").error_code == ErrorCode.group_id_not_found
        # Its configs went with it.
        assert group_configs(client, "gone")["share.delivery.count.limit"].value == "5"


# -- restarts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "kill-9"])
def test_accepted_offsets_survive_a_restart(broker: BrokerProcess, hard: bool) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "dur")
        key = (topic_id(client, "dur"), 0)
        set_group_configs(client, "durg", EARLIEST)
        produce_values(client, "dur", *(str(n).encode() for n in range(6)))
    with ShareMember(broker.bootstrap, "durg", "member-a") as a:
        assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2, 3, 4, 5]
        # Accepted, then the broker goes down while 3..5 are still held.
        accepted = a.acknowledge({key: [(0, 2, (ACCEPT,))]})
        assert ack_code(accepted, key) == ErrorCode.none
        broker.restart(hard=hard)
    with ShareMember(broker.bootstrap, "durg", "member-b") as b:
        assert acquired_offsets(partition_of(b.fetch(key), key)) == [3, 4, 5]
    with WireClient(broker.bootstrap) as client:
        (partition,) = describe_offsets(client, "durg", "dur").topics[0].partitions
        assert partition.start_offset == 3
        assert group_configs(client, "durg")["share.auto.offset.reset"].value == "earliest"
