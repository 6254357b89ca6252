"""Share groups (KIP-932) on the wire: raw ShareGroupHeartbeat, ShareFetch, ShareAcknowledge,
group configs and the share-group admin APIs against the real broker. Each case is an answer a
share consumer (librdkafka) or an admin client relies on, as Kafka gives it.

Most groups here set share.auto.offset.reset=earliest first, so records produced before the
group's first fetch are delivered; the default (latest) has its own test. Tests that need no
broker of their own share one (module-scoped) and keep to their own topic and group names.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.alter_share_group_offsets.v0 import request as alter_offsets_v0
from kio.schema.delete_groups.v2 import request as delete_groups_v2
from kio.schema.delete_share_group_offsets.v0 import request as delete_offsets_v0
from kio.schema.describe_configs.v4 import request as describe_configs_v4
from kio.schema.describe_share_group_offsets.v1 import request as describe_offsets_v1
from kio.schema.errors import ErrorCode
from kio.schema.incremental_alter_configs.v1 import request as alter_configs_v1
from kio.schema.join_group.v8 import request as join_group_v8
from kio.schema.list_groups.v5 import request as list_groups_v5
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.offset_commit.v9 import request as offset_commit_v9
from kio.schema.share_acknowledge.v1 import request as share_ack_v1
from kio.schema.share_acknowledge.v2 import request as share_ack_v2
from kio.schema.share_fetch.v1 import request as share_fetch_v1
from kio.schema.share_group_describe.v1 import request as share_describe_v1
from kio.schema.share_group_heartbeat.v1 import request as heartbeat_v1

from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import iter_batches
from tests.integration.test_wire import create_topic
from tests.integration.test_wire import fetch
from tests.integration.test_wire import produce
from tests.support.batches import build_batch
from tests.support.server import BrokerProcess
from tests.support.server import running_broker
from tests.support.wire import WireClient

GROUP_RESOURCE = 32
SET, DELETE = 0, 1
DEFAULT_CONFIG, DYNAMIC_GROUP_CONFIG = 5, 8  # DescribeConfigs config_source
GAP, ACCEPT, RELEASE, REJECT, RENEW = 0, 1, 2, 3, 4
EARLIEST = {"share.auto.offset.reset": "earliest"}

PartitionKey = tuple[uuid.UUID, int]
# (first offset, last offset, acknowledge types) per partition
Acks = dict[PartitionKey, list[tuple[int, int, tuple[int, ...]]]]


# -- requests --------------------------------------------------------------------------------------


def topic_id(client: WireClient, name: str) -> uuid.UUID:
    request = metadata_v12.MetadataRequest(
        topics=(metadata_v12.MetadataRequestTopic(name=name, topic_id=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    topic = client.call(request).topics[0]
    assert topic.error_code == ErrorCode.none, topic
    assert topic.topic_id is not None
    assert topic.topic_id.int != 0
    return topic.topic_id


def topic_exists(client: WireClient, name: str) -> bool:
    request = metadata_v12.MetadataRequest(
        topics=(metadata_v12.MetadataRequestTopic(name=name, topic_id=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    return client.call(request).topics[0].error_code == ErrorCode.none


def produce_values(client: WireClient, topic: str, *values: bytes, partition: int = 0) -> int:
    """One batch holding the values; returns its base offset."""
    response = produce(client, topic, bytes(build_batch(values)), partition)
    assert response.error_code == ErrorCode.none, response
    return int(response.base_offset)


def heartbeat(
    client: WireClient,
    group: str,
    member: str,
    epoch: int,
    topics: Iterable[str] | None = None,
    rack: str | None = None,
) -> Any:
    request = heartbeat_v1.ShareGroupHeartbeatRequest(
        group_id=group,
        member_id=member,
        member_epoch=epoch,
        rack_id=rack,
        subscribed_topic_names=None if topics is None else tuple(topics),
    )
    return client.call(request)


def join(client: WireClient, group: str, member: str, *topics: str) -> Any:
    response = heartbeat(client, group, member, 0, topics)
    assert response.error_code == ErrorCode.none, response
    return response


def assigned(response: Any) -> dict[uuid.UUID, set[int]]:
    assert response.assignment is not None
    return {t.topic_id: set(t.partitions) for t in response.assignment.topic_partitions}


def alter_group_configs(client: WireClient, group: str, changes: dict[str, str | None]) -> Any:
    """SET (value) or DELETE (None) group configs; returns the resource's result."""
    request = alter_configs_v1.IncrementalAlterConfigsRequest(
        resources=(
            alter_configs_v1.AlterConfigsResource(
                resource_type=GROUP_RESOURCE,
                resource_name=group,
                configs=tuple(
                    alter_configs_v1.AlterableConfig(
                        name=name,
                        config_operation=SET if value is not None else DELETE,
                        value=value,
                    )
                    for name, value in changes.items()
                ),
            ),
        ),
        validate_only=False,
    )
    return client.call(request).responses[0]


def set_group_configs(client: WireClient, group: str, changes: dict[str, str | None]) -> None:
    result = alter_group_configs(client, group, changes)
    assert result.error_code == ErrorCode.none, result


def group_configs(client: WireClient, group: str) -> dict[str, Any]:
    request = describe_configs_v4.DescribeConfigsRequest(
        resources=(
            describe_configs_v4.DescribeConfigsResource(
                resource_type=GROUP_RESOURCE, resource_name=group, configuration_keys=None
            ),
        ),
        include_synonyms=False,
        include_documentation=False,
    )
    result = client.call(request).results[0]
    assert result.error_code == ErrorCode.none, result
    return {entry.name: entry for entry in result.configs}


def _by_topic(keys: Iterable[PartitionKey]) -> dict[uuid.UUID, list[int]]:
    topics: dict[uuid.UUID, list[int]] = {}
    for tid, index in keys:
        topics.setdefault(tid, []).append(index)
    return topics


def share_fetch(
    client: WireClient,
    group: str,
    member: str,
    epoch: int,
    partitions: Iterable[PartitionKey] = (),
    acks: Acks | None = None,
    max_wait_ms: int = 0,
    forgotten: Iterable[PartitionKey] = (),
    send_only: bool = False,
) -> Any:
    acks = acks or {}
    keys = list(dict.fromkeys([*partitions, *acks]))
    request = share_fetch_v1.ShareFetchRequest(
        group_id=group,
        member_id=member,
        share_session_epoch=epoch,
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=500,
        batch_size=500,
        topics=tuple(
            share_fetch_v1.FetchTopic(
                topic_id=tid,
                partitions=tuple(
                    share_fetch_v1.FetchPartition(
                        partition_index=index,
                        acknowledgement_batches=tuple(
                            share_fetch_v1.AcknowledgementBatch(
                                first_offset=first, last_offset=last, acknowledge_types=types
                            )
                            for first, last, types in acks.get((tid, index), [])
                        ),
                    )
                    for index in indexes
                ),
            )
            for tid, indexes in _by_topic(keys).items()
        ),
        forgotten_topics_data=tuple(
            share_fetch_v1.ForgottenTopic(topic_id=tid, partitions=tuple(indexes))
            for tid, indexes in _by_topic(forgotten).items()
        ),
    )
    if send_only:
        return client.send(request)
    return client.call(request)


def share_acknowledge(
    client: WireClient,
    group: str,
    member: str,
    epoch: int,
    acks: Acks,
    version: int = 1,
    renew: bool = False,
) -> Any:
    schema: Any = share_ack_v2 if version == 2 else share_ack_v1
    topics = tuple(
        schema.AcknowledgeTopic(
            topic_id=tid,
            partitions=tuple(
                schema.AcknowledgePartition(
                    partition_index=index,
                    acknowledgement_batches=tuple(
                        schema.AcknowledgementBatch(
                            first_offset=first, last_offset=last, acknowledge_types=types
                        )
                        for first, last, types in acks[(tid, index)]
                    ),
                )
                for index in indexes
            ),
        )
        for tid, indexes in _by_topic(acks).items()
    )
    fields: dict[str, Any] = {
        "group_id": group,
        "member_id": member,
        "share_session_epoch": epoch,
        "topics": topics,
    }
    if version == 2:
        fields["is_renew_ack"] = renew
    return client.call(schema.ShareAcknowledgeRequest(**fields))


def partition_of(response: Any, key: PartitionKey) -> Any:
    """The response's entry for the partition, or None when it is not in the response."""
    for topic in response.responses:
        if topic.topic_id == key[0]:
            for partition in topic.partitions:
                if partition.partition_index == key[1]:
                    return partition
    return None


def ranges(partition: Any) -> list[tuple[int, int, int]]:
    """(first offset, last offset, delivery count) of each AcquiredRecords range."""
    if partition is None:
        return []
    return [(r.first_offset, r.last_offset, r.delivery_count) for r in partition.acquired_records]


def acquired_offsets(partition: Any) -> list[int]:
    return [o for first, last, _ in ranges(partition) for o in range(first, last + 1)]


def acquired_values(partition: Any) -> dict[int, bytes | None]:
    """Offset -> value of the records inside the acquired ranges (the rest is dropped, as a
    client does)."""
    wanted = set(acquired_offsets(partition))
    data = bytes(partition.records)
    return {
        record.offset: record.value
        for header in iter_batches(data)
        for record in iter_records(data, header)
        if record.offset in wanted
    }


class ShareMember:
    """One share consumer: its own connection and member id, tracking its session epoch as
    librdkafka does (+1 after every successful ShareFetch or ShareAcknowledge)."""

    def __init__(self, bootstrap: str, group: str, member_id: str) -> None:
        self.client = WireClient(bootstrap)
        self.group = group
        self.member_id = member_id
        self.epoch = 0

    def __enter__(self) -> ShareMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def join(self, *topics: str) -> Any:
        return join(self.client, self.group, self.member_id, *topics)

    def leave(self) -> None:
        response = heartbeat(self.client, self.group, self.member_id, -1)
        assert (response.error_code, response.member_epoch) == (ErrorCode.none, -1), response

    def fetch(self, *keys: PartitionKey, acks: Acks | None = None, max_wait_ms: int = 0) -> Any:
        response = share_fetch(
            self.client, self.group, self.member_id, self.epoch, keys, acks, max_wait_ms
        )
        assert response.error_code == ErrorCode.none, response
        self._advance()
        return response

    def acknowledge(self, acks: Acks, version: int = 1, renew: bool = False) -> Any:
        response = share_acknowledge(
            self.client, self.group, self.member_id, self.epoch, acks, version, renew
        )
        assert response.error_code == ErrorCode.none, response
        self._advance()
        return response

    def close_session(self, acks: Acks | None = None) -> Any:
        response = share_fetch(self.client, self.group, self.member_id, -1, (), acks)
        assert response.error_code == ErrorCode.none, response
        self.epoch = 0
        return response

    def _advance(self) -> None:
        if self.epoch != -1:
            self.epoch += 1


def ack_code(response: Any, key: PartitionKey) -> int:
    """A ShareAcknowledge partition's error code."""
    partition = partition_of(response, key)
    assert partition is not None, response
    return int(partition.error_code)


def fresh(prefix: str) -> str:
    """A name no other test on a shared broker uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the many small parametrized cases (each uses its own names)."""
    with running_broker(tmp_path_factory.mktemp("shared") / "data") as process:
        yield process


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


# -- ShareFetch sessions ---------------------------------------------------------------------------


def test_share_session_epochs(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "s")
        key = (topic_id(client, "s"), 0)
        join(client, "sg", "member-a", "s")

        def fetch_at(epoch: int, acks: Acks | None = None) -> Any:
            return share_fetch(client, "sg", "member-a", epoch, [key], acks)

        assert fetch_at(1).error_code == ErrorCode.share_session_not_found
        assert fetch_at(-1).error_code == ErrorCode.share_session_not_found
        with_acks = fetch_at(0, {key: [(0, 0, (ACCEPT,))]})
        assert with_acks.error_code == ErrorCode.invalid_request
        assert with_acks.responses == ()

        opened = fetch_at(0)
        assert opened.error_code == ErrorCode.none
        assert opened.acquisition_lock_timeout == datetime.timedelta(milliseconds=30000)
        assert fetch_at(5).error_code == ErrorCode.invalid_share_session_epoch
        assert fetch_at(2).error_code == ErrorCode.invalid_share_session_epoch
        # A wrong epoch leaves the session as it was.
        assert fetch_at(1).error_code == ErrorCode.none
        assert fetch_at(1).error_code == ErrorCode.invalid_share_session_epoch
        assert fetch_at(2).error_code == ErrorCode.none
        # Reopening at epoch 0 starts over at 1.
        assert fetch_at(0).error_code == ErrorCode.none
        assert fetch_at(3).error_code == ErrorCode.invalid_share_session_epoch
        assert fetch_at(1).error_code == ErrorCode.none
        assert fetch_at(-1).error_code == ErrorCode.none
        assert fetch_at(2).error_code == ErrorCode.share_session_not_found


def test_unknown_topic_id_and_partition_are_per_partition_errors(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "u")
        good = (topic_id(client, "u"), 0)
        stranger = (uuid.uuid4(), 0)
        missing_partition = (good[0], 7)
        response = share_fetch(client, "ug", "m", 0, [good, stranger, missing_partition])
        assert response.error_code == ErrorCode.none
        assert partition_of(response, stranger).error_code == ErrorCode.unknown_topic_id
        assert partition_of(response, missing_partition).error_code == (
            ErrorCode.unknown_topic_or_partition
        )
        assert partition_of(response, good).error_code == ErrorCode.none


def test_records_come_with_acquired_ranges_and_delivery_count_one(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "r")
        key = (topic_id(client, "r"), 0)
        set_group_configs(client, "rg", EARLIEST)
        produce_values(client, "r", b"a", b"b", b"c")
        produce_values(client, "r", b"d", b"e")
        with ShareMember(shared_broker.bootstrap, "rg", "member-a") as member:
            member.join("r")
            partition = partition_of(member.fetch(key), key)
            assert partition.error_code == ErrorCode.none
            assert acquired_offsets(partition) == [0, 1, 2, 3, 4]
            assert {count for _, _, count in ranges(partition)} == {1}
            assert acquired_values(partition) == {0: b"a", 1: b"b", 2: b"c", 3: b"d", 4: b"e"}
            # Nothing more to hand out: an empty, but never null, Records.
            again = partition_of(member.fetch(key), key)
            assert again is None or (bytes(again.records) == b"" and not again.acquired_records)


def test_long_poll_waits_max_wait_and_records_are_never_null(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "lp")
        key = (topic_id(client, "lp"), 0)
        started = time.monotonic()
        # kio refuses a null non-nullable Records, so decoding at all proves it is not null.
        response = share_fetch(client, "lpg", "m", 0, [key], max_wait_ms=500)
        elapsed = time.monotonic() - started
        assert response.error_code == ErrorCode.none
        assert 0.45 <= elapsed < 3
        partition = partition_of(response, key)  # a new session answers every partition
        assert partition is not None
        assert bytes(partition.records) == b""
        assert partition.acquired_records == ()
        started = time.monotonic()
        later = share_fetch(client, "lpg", "m", 1, max_wait_ms=300)
        assert later.error_code == ErrorCode.none
        assert 0.25 <= time.monotonic() - started < 3


def test_produce_wakes_a_parked_share_fetch(shared_broker: BrokerProcess) -> None:
    with (
        WireClient(shared_broker.bootstrap) as client,
        WireClient(shared_broker.bootstrap) as producer,
    ):
        create_topic(client, "w")
        key = (topic_id(client, "w"), 0)
        set_group_configs(client, "wg", EARLIEST)
        share_fetch(client, "wg", "m", 0, [key])  # open the session, nothing there yet
        started = time.monotonic()
        correlation = share_fetch(client, "wg", "m", 1, max_wait_ms=10_000, send_only=True)
        time.sleep(0.3)
        produce_values(producer, "w", b"wake")
        response = client.receive(78, 1, correlation)
        assert time.monotonic() - started < 5
        assert acquired_values(partition_of(response, key)) == {0: b"wake"}


def test_closing_the_session_releases_without_counting_a_delivery(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "c")
        key = (topic_id(client, "c"), 0)
        set_group_configs(client, "cg", EARLIEST)
        produce_values(client, "c", b"x", b"y")
        with (
            ShareMember(shared_broker.bootstrap, "cg", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "cg", "member-b") as b,
        ):
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 1, 1)]
            assert ranges(partition_of(b.fetch(key), key)) == []
            closed = a.close_session()
            assert closed.responses == ()
            assert ranges(partition_of(b.fetch(key), key)) == [(0, 1, 1)]
            # Final acks ride on the closing request.
            final = b.close_session(acks={key: [(0, 1, (ACCEPT,))]})
            assert partition_of(final, key).acknowledge_error_code == ErrorCode.none
            assert ranges(partition_of(a.fetch(key), key)) == []


def test_a_dropped_connection_releases_and_counts_the_delivery(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "drop")
        key = (topic_id(client, "drop"), 0)
        set_group_configs(client, "dropg", EARLIEST)
        produce_values(client, "drop", b"x")
        with ShareMember(shared_broker.bootstrap, "dropg", "member-a") as a:
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, 1)]
        with ShareMember(shared_broker.bootstrap, "dropg", "member-b") as b:
            # The worker may have died on the record, so that delivery counts.
            assert ranges(partition_of(b.fetch(key, max_wait_ms=3000), key)) == [(0, 0, 2)]
        with ShareMember(shared_broker.bootstrap, "dropg", "member-a") as a:
            # Its old session went with the connection.
            stale = share_fetch(a.client, "dropg", "member-a", 2, [key])
            assert stale.error_code == ErrorCode.share_session_not_found


def test_leaving_the_group_releases_the_members_records(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "lv")
        key = (topic_id(client, "lv"), 0)
        set_group_configs(client, "lvg", EARLIEST)
        produce_values(client, "lv", b"x")
        with (
            ShareMember(shared_broker.bootstrap, "lvg", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "lvg", "member-b") as b,
        ):
            a.join("lv")
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0]
            a.leave()
            assert acquired_offsets(partition_of(b.fetch(key, max_wait_ms=3000), key)) == [0]


def test_forgotten_partitions_leave_the_session(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "fg", partitions=2)
        tid = topic_id(client, "fg")
        set_group_configs(client, "fgg", EARLIEST)
        share_fetch(client, "fgg", "m", 0, [(tid, 0), (tid, 1)])
        forgot = share_fetch(client, "fgg", "m", 1, forgotten=[(tid, 1)])
        assert forgot.error_code == ErrorCode.none
        produce_values(client, "fg", b"p1", partition=1)
        produce_values(client, "fg", b"p0", partition=0)
        response = share_fetch(client, "fgg", "m", 2, max_wait_ms=1000)
        assert acquired_values(partition_of(response, (tid, 0))) == {0: b"p0"}
        assert partition_of(response, (tid, 1)) is None


def test_share_fetch_needs_group_and_member_ids(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "ids")
        key = (topic_id(client, "ids"), 0)
        assert share_fetch(client, "g", "", 0, [key]).error_code == ErrorCode.invalid_request
        assert share_fetch(client, "", "m", 0, [key]).error_code == ErrorCode.invalid_request


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


# -- acknowledgements ------------------------------------------------------------------------------


def test_accept_piggybacked_on_fetch_is_final(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "acc")
        key = (topic_id(client, "acc"), 0)
        set_group_configs(client, "ag", EARLIEST)
        produce_values(client, "acc", b"1", b"2", b"3")
        with (
            ShareMember(shared_broker.bootstrap, "ag", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "ag", "member-b") as b,
        ):
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2]
            acked = partition_of(a.fetch(key, acks={key: [(0, 2, (ACCEPT,))]}), key)
            assert acked.acknowledge_error_code == ErrorCode.none
            assert acked.acquired_records == ()
            a.close_session()
            assert ranges(partition_of(b.fetch(key, max_wait_ms=200), key)) == []


def test_release_redelivers_with_delivery_count_two(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "rel")
        key = (topic_id(client, "rel"), 0)
        set_group_configs(client, "relg", EARLIEST)
        produce_values(client, "rel", b"1", b"2", b"3")
        with ShareMember(shared_broker.bootstrap, "relg", "member-a") as a:
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 2, 1)]
            # Per-offset types: accept 0, release 1 and 2.
            released = a.acknowledge({key: [(0, 2, (ACCEPT, RELEASE, RELEASE))]})
            assert ack_code(released, key) == ErrorCode.none
            assert ranges(partition_of(a.fetch(key), key)) == [(1, 2, 2)]


def test_ack_of_records_not_held_is_invalid_record_state_and_changes_nothing(
    shared_broker: BrokerProcess,
) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "own")
        key = (topic_id(client, "own"), 0)
        set_group_configs(client, "og", EARLIEST)
        produce_values(client, "own", b"1", b"2", b"3")
        with (
            ShareMember(shared_broker.bootstrap, "og", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "og", "member-b") as b,
        ):
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2]
            b.fetch(key)
            # B cannot ack what A holds.
            stolen = b.acknowledge({key: [(0, 2, (ACCEPT,))]})
            assert ack_code(stolen, key) == ErrorCode.invalid_record_state
            # A's ack naming one offset never delivered fails as a whole...
            mixed = a.acknowledge({key: [(0, 1, (ACCEPT,)), (5, 5, (ACCEPT,))]})
            assert ack_code(mixed, key) == ErrorCode.invalid_record_state
            piggy = partition_of(a.fetch(key, acks={key: [(2, 3, (ACCEPT,))]}), key)
            assert piggy.acknowledge_error_code == ErrorCode.invalid_record_state
            # ...so A still holds all three and can release them.
            released = a.acknowledge({key: [(0, 2, (RELEASE,))]})
            assert ack_code(released, key) == ErrorCode.none
            assert ranges(partition_of(b.fetch(key), key)) == [(0, 2, 2)]


@pytest.mark.parametrize(
    ("batches", "why"),
    [
        ([(2, 1, (ACCEPT,))], "first > last"),
        ([(0, 1, (ACCEPT,)), (1, 2, (ACCEPT,))], "overlapping"),
        ([(1, 2, (ACCEPT,)), (0, 0, (ACCEPT,))], "not ascending"),
        ([(0, 2, (ACCEPT, ACCEPT))], "wrong number of types"),
        ([(0, 2, ())], "no types"),
        ([(0, 2, (5,))], "type 5"),
        ([(0, 2, (RENEW,))], "RENEW in v1"),
    ],
)
def test_malformed_acknowledgements_are_invalid_request_per_partition(
    shared_broker: BrokerProcess, batches: list[tuple[int, int, tuple[int, ...]]], why: str
) -> None:
    topic, group = fresh("bad"), fresh("badg")
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, topic)
        key = (topic_id(client, topic), 0)
        set_group_configs(client, group, EARLIEST)
        produce_values(client, topic, b"1", b"2", b"3")
        with ShareMember(shared_broker.bootstrap, group, "member-a") as a:
            assert acquired_offsets(partition_of(a.fetch(key), key)) == [0, 1, 2]
            over_ack = a.acknowledge({key: batches})
            assert ack_code(over_ack, key) == ErrorCode.invalid_request, why
            over_fetch = partition_of(a.fetch(key, acks={key: batches}), key)
            assert over_fetch.error_code == ErrorCode.none, why
            assert over_fetch.acknowledge_error_code == ErrorCode.invalid_request, why
            # Nothing was applied: the member still holds every record.
            assert ack_code(a.acknowledge({key: [(0, 2, (ACCEPT,))]}), key) == ErrorCode.none


def test_share_acknowledge_session_rules(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "sa")
        key = (topic_id(client, "sa"), 0)
        set_group_configs(client, "sag", EARLIEST)
        produce_values(client, "sa", b"1", b"2")
        acks: Acks = {key: [(0, 0, (ACCEPT,))]}
        assert share_acknowledge(client, "sag", "m", 1, acks).error_code == (
            ErrorCode.share_session_not_found
        )
        assert share_acknowledge(client, "sag", "m", -1, acks).error_code == (
            ErrorCode.share_session_not_found
        )
        opened = share_fetch(client, "sag", "m", 0, [key])
        assert acquired_offsets(partition_of(opened, key)) == [0, 1]
        at_zero = share_acknowledge(client, "sag", "m", 0, acks)
        assert at_zero.error_code == ErrorCode.invalid_share_session_epoch
        assert share_acknowledge(client, "sag", "m", 2, acks).error_code == (
            ErrorCode.invalid_share_session_epoch
        )
        ok = share_acknowledge(client, "sag", "m", 1, acks)
        assert ok.error_code == ErrorCode.none
        assert ack_code(ok, key) == ErrorCode.none
        # The acknowledge used epoch 1: the next fetch must carry 2.
        stale = share_fetch(client, "sag", "m", 1, [key])
        assert stale.error_code == ErrorCode.invalid_share_session_epoch
        assert share_fetch(client, "sag", "m", 2, [key]).error_code == ErrorCode.none
        # Epoch -1 applies the acks, then closes the session.
        final = share_acknowledge(client, "sag", "m", -1, {key: [(1, 1, (ACCEPT,))]})
        assert (final.error_code, ack_code(final, key)) == (ErrorCode.none, ErrorCode.none)
        assert share_fetch(client, "sag", "m", 3, [key]).error_code == (
            ErrorCode.share_session_not_found
        )
        reopened = share_fetch(client, "sag", "m", 0, [key])
        assert ranges(partition_of(reopened, key)) == []


def test_renew_keeps_the_lock_past_its_duration(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "rn")
        key = (topic_id(client, "rn"), 0)
        set_group_configs(client, "rng", {**EARLIEST, "share.record.lock.duration.ms": "1000"})
        produce_values(client, "rn", b"slow")
        with (
            ShareMember(shared_broker.bootstrap, "rng", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "rng", "member-b") as b,
        ):
            fetched = a.fetch(key)
            acquired_at = time.monotonic()
            assert fetched.acquisition_lock_timeout == datetime.timedelta(milliseconds=1000)
            assert acquired_offsets(partition_of(fetched, key)) == [0]
            time.sleep(0.6)
            first = a.acknowledge({key: [(0, 0, (RENEW,))]}, version=2, renew=True)
            assert ack_code(first, key) == ErrorCode.none
            assert first.acquisition_lock_timeout == datetime.timedelta(milliseconds=1000)
            # Past the first lock's end (and the 100 ms expiry tick): had the renewal not taken,
            # the record would be released and this second renewal refused.
            time.sleep(max(0.0, acquired_at + 1.2 - time.monotonic()))
            second = a.acknowledge({key: [(0, 0, (RENEW,))]}, version=2, renew=True)
            assert ack_code(second, key) == ErrorCode.none
            assert ranges(partition_of(b.fetch(key), key)) == []
            assert ack_code(a.acknowledge({key: [(0, 0, (ACCEPT,))]}), key) == ErrorCode.none


def test_lock_expiry_redelivers_and_wakes_a_parked_fetch(shared_broker: BrokerProcess) -> None:
    with WireClient(shared_broker.bootstrap) as client:
        create_topic(client, "ex")
        key = (topic_id(client, "ex"), 0)
        set_group_configs(client, "exg", {**EARLIEST, "share.record.lock.duration.ms": "1000"})
        produce_values(client, "ex", b"hung")
        with (
            ShareMember(shared_broker.bootstrap, "exg", "member-a") as a,
            ShareMember(shared_broker.bootstrap, "exg", "member-b") as b,
        ):
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, 1)]
            started = time.monotonic()
            redelivered = partition_of(b.fetch(key, max_wait_ms=5000), key)
            assert 0.7 <= time.monotonic() - started < 3
            assert ranges(redelivered) == [(0, 0, 2)]
            late = a.acknowledge({key: [(0, 0, (ACCEPT,))]})
            assert ack_code(late, key) == ErrorCode.invalid_record_state


# -- dead letters ----------------------------------------------------------------------------------


def _release_twice(bootstrap: str, group: str, key: PartitionKey) -> None:
    with ShareMember(bootstrap, group, "member-a") as a:
        for count in (1, 2):
            assert ranges(partition_of(a.fetch(key), key)) == [(0, 0, count)]
            assert ack_code(a.acknowledge({key: [(0, 0, (RELEASE,))]}), key) == ErrorCode.none
        # Archived: never delivered again.
        assert ranges(partition_of(a.fetch(key), key)) == []


def test_delivery_limit_dead_letters_and_archives(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "poison")
        key = (topic_id(client, "poison"), 0)
        set_group_configs(client, "pg", {**EARLIEST, "share.delivery.count.limit": "2"})
        produce(client, "poison", bytes(build_batch([b"bad"], keys=[b"k"])))
        _release_twice(broker.bootstrap, "pg", key)
        letters = fetch(client, "dlq.pg", 0)
        assert letters.error_code == ErrorCode.none
        data = bytes(letters.records)
        (record,) = [r for h in iter_batches(data) for r in iter_records(data, h)]
        assert (record.key, record.value) == (b"k", b"bad")
        headers = dict(record.headers)
        assert headers["_dlq.errors.disposition"] == b"MAX_DELIVERY_ATTEMPTS_REACHED"
        assert headers["_dlq.errors.original.topic"] == b"poison"
        assert headers["_dlq.errors.original.offset"] == b"0"
        assert headers["_dlq.errors.delivery.count"] == b"2"
        # A rejected record goes there at once.
        produce_values(client, "poison", b"refused")
        with ShareMember(broker.bootstrap, "pg", "member-b") as b:
            assert ranges(partition_of(b.fetch(key), key)) == [(1, 1, 1)]
            assert ack_code(b.acknowledge({key: [(1, 1, (REJECT,))]}), key) == ErrorCode.none
        data = bytes(fetch(client, "dlq.pg", 1).records)
        letters_now = [r for h in iter_batches(data) for r in iter_records(data, h)]
        assert [(r.offset, r.value) for r in letters_now] == [(1, b"refused")]
        assert dict(letters_now[0].headers)["_dlq.errors.disposition"] == b"CLIENT_REJECTED"


def test_empty_dead_letter_topic_name_turns_dead_lettering_off(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "poison")
        key = (topic_id(client, "poison"), 0)
        set_group_configs(
            client,
            "quiet",
            {
                **EARLIEST,
                "share.delivery.count.limit": "2",
                "errors.deadletterqueue.topic.name": "",
            },
        )
        produce_values(client, "poison", b"bad")
        _release_twice(broker.bootstrap, "quiet", key)
        assert not topic_exists(client, "dlq.quiet")


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
