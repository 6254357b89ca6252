"""`millpond groups list/describe` on share groups (KIP-932), against the real broker.

One broker and one share group serve every test here: a ShareConsumer in explicit
acknowledgement mode holds the records it was given without acknowledging them, so they stay
in flight (for the 30 s record lock) while the commands look at the group.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import Producer
from confluent_kafka import ShareConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic
from kio.schema.describe_acls.v3.request import DescribeAclsRequest
from kio.schema.describe_acls.v3.response import DescribeAclsResponse
from kio.schema.describe_share_group_offsets.v1.request import DescribeShareGroupOffsetsRequest
from kio.schema.describe_share_group_offsets.v1.request import DescribeShareGroupOffsetsRequestGroup
from kio.schema.describe_share_group_offsets.v1.response import DescribeShareGroupOffsetsResponse
from kio.schema.types import GroupId
from kio.static.primitive import i8

from millpond.cli.kafka_wire import ApiNotServed
from millpond.cli.kafka_wire import KafkaWire
from tests.cli.support import assert_one_line_error
from tests.cli.support import run_cli
from tests.cli.support import table_rows
from tests.support.server import BrokerProcess
from tests.support.server import running_broker

pytestmark = [pytest.mark.compat, pytest.mark.timeout(120)]

TOPIC = "jobs"
GROUP = "workers"
CLASSIC_GROUP = "billing"
RECORDS = 5
HTTP_ADDRESS = re.compile(r"http on (?P<address>[^\s,]+)")


@dataclass(frozen=True)
class ShareSetup:
    broker: BrokerProcess
    http_server: str
    # Records the share consumer was handed and holds unacknowledged.
    held: int


def _share_offsets_ready(bootstrap: str) -> bool:
    """Whether the group has share-partition state (its start offset) on both partitions."""
    request = DescribeShareGroupOffsetsRequest(
        groups=(DescribeShareGroupOffsetsRequestGroup(group_id=GroupId(GROUP), topics=None),)
    )
    with KafkaWire(bootstrap, timeout=5) as wire:
        answer = wire.call(request, DescribeShareGroupOffsetsResponse)
    starts = [
        partition.start_offset
        for group in answer.groups
        for topic in group.topics
        for partition in topic.partitions
    ]
    return len(starts) == 2 and all(start >= 0 for start in starts)


@pytest.fixture(scope="module")
def share_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShareSetup]:
    data_dir: Path = tmp_path_factory.mktemp("share-cli") / "data"
    with running_broker(data_dir) as broker:
        match = HTTP_ADDRESS.search(broker.log())
        assert match is not None, broker.log()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(10)
        # A classic group with only committed offsets (state Empty), to list beside the share one.
        admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(CLASSIC_GROUP, [TopicPartition(TOPIC, 0, 0)])]
        )[CLASSIC_GROUP].result(10)
        consumer = ShareConsumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": GROUP,
                "share.acknowledgement.mode": "explicit",
                "log_level": 0,
            }
        )
        try:
            consumer.subscribe([TOPIC])
            # A share group starts at the log end: produce only once it has a start offset.
            deadline = time.monotonic() + 30
            while not _share_offsets_ready(broker.bootstrap):
                assert time.monotonic() < deadline, "the share group never got its partitions"
                assert not consumer.poll(0.2)
            producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
            for i in range(RECORDS):
                producer.produce(TOPIC, value=f"job-{i}".encode(), partition=i % 2)
            assert producer.flush(10) == 0
            held = 0
            while not held:
                assert time.monotonic() < deadline, "the share consumer never got a record"
                held = sum(1 for message in consumer.poll(0.5) if message.error() is None)
            yield ShareSetup(broker, match["address"], held)
        finally:
            consumer.close()


def _describe(setup: ShareSetup, http_server: str) -> tuple[str, list[list[str]]]:
    result = run_cli(
        "groups",
        "describe",
        GROUP,
        "--http-server",
        http_server,
        bootstrap=setup.broker.bootstrap,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout, table_rows(result.stdout)


def test_list_shows_share_groups_beside_consumer_groups(share_setup: ShareSetup) -> None:
    result = run_cli("groups", "list", bootstrap=share_setup.broker.bootstrap)
    assert result.returncode == 0, (result.stdout, result.stderr)
    rows = table_rows(result.stdout)
    assert rows == [
        [CLASSIC_GROUP, "Empty", "classic", "-"],
        [GROUP, "Stable", "share", "simple"],
    ]


def test_describe_shows_members_offsets_and_broker_figures(share_setup: ShareSetup) -> None:
    output, rows = _describe(share_setup, share_setup.http_server)
    assert re.search(rf"^{GROUP}  state: Stable  type: share  .*members: 1$", output, re.M)
    members = [row for row in rows if len(row) == 4]
    assert len(members) == 1
    assert members[0][1] == "rdkafka"
    assert members[0][3] == f"{TOPIC}:0, {TOPIC}:1"
    partitions = [row for row in rows if len(row) == 8]
    assert [row[:2] for row in partitions] == [[TOPIC, "0"], [TOPIC, "1"]]
    # Nothing is acknowledged: the start offsets stay at 0 and every record counts as lag.
    assert [row[2] for row in partitions] == ["0", "0"]
    assert sum(int(row[3]) for row in partitions) == RECORDS
    in_flight = sum(int(row[4]) for row in partitions)
    available = sum(int(row[5]) for row in partitions)
    assert share_setup.held <= in_flight <= RECORDS
    assert in_flight + available <= RECORDS
    assert [row[6] for row in partitions] == ["0", "0"]
    assert "/metrics" not in output


def test_describe_without_the_http_server_still_describes(share_setup: ShareSetup) -> None:
    with socket.socket() as bound:  # bound but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{bound.getsockname()[1]}"
        output, rows = _describe(share_setup, address)
    partitions = [row for row in rows if len(row) == 8]
    assert [row[:3] for row in partitions] == [[TOPIC, "0", "0"], [TOPIC, "1", "0"]]
    assert all(row[4:] == ["-", "-", "-", "-"] for row in partitions)
    notes = [line for line in output.splitlines() if "/metrics" in line]
    assert len(notes) == 1
    assert address in notes[0]


def test_describe_of_an_unknown_group_is_still_an_error(share_setup: ShareSetup) -> None:
    result = run_cli("groups", "describe", "nobody", bootstrap=share_setup.broker.bootstrap)
    assert_one_line_error(result, 1, "unknown group 'nobody'")


def test_describe_of_a_consumer_group_is_unchanged(share_setup: ShareSetup) -> None:
    result = run_cli("groups", "describe", CLASSIC_GROUP, bootstrap=share_setup.broker.bootstrap)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "type: classic" in result.stdout
    rows = table_rows(result.stdout)
    assert [row[:5] for row in rows] == [[TOPIC, "0", "0", "3", "3"]]


def test_an_api_the_broker_does_not_serve_is_named(share_setup: ShareSetup) -> None:
    request = DescribeAclsRequest(
        resource_type_filter=i8(1),
        resource_name_filter=None,
        pattern_type_filter=i8(1),
        principal_filter=None,
        host_filter=None,
        operation=i8(1),
        permission_type=i8(1),
    )
    with (
        KafkaWire(share_setup.broker.bootstrap, timeout=5) as wire,
        pytest.raises(ApiNotServed) as raised,
    ):
        wire.call(request, DescribeAclsResponse, "ACLs")
    assert raised.value.message == "the cluster does not serve ACLs (DescribeAcls v3)"


def test_a_malformed_http_server_is_a_usage_error() -> None:
    result = run_cli("groups", "describe", GROUP, "--http-server", "nowhere")
    assert_one_line_error(result, 2)
