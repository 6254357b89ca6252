"""Bad input and protocol edges on the real server: error codes, closed connections, no crash."""

from __future__ import annotations

import datetime
import os
import struct

import pytest
from kio.schema.api_versions.v0 import ApiVersionsRequest as ApiVersionsV0
from kio.schema.api_versions.v3 import ApiVersionsRequest
from kio.schema.create_topics.v7 import request as create_v7
from kio.schema.delete_records.v2 import request as delete_records_v2
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.incremental_alter_configs.v1 import request as alter_v1
from kio.schema.init_producer_id.v4 import request as init_v4
from kio.schema.list_offsets.v7 import request as list_offsets_v7
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.produce.v9 import request as produce_v9

from tests.support.batches import build_batch
from tests.support.server import BrokerProcess
from tests.support.wire import WireClient

SECOND = datetime.timedelta(seconds=1)


def create_topic(client: WireClient, name: str, partitions: int = 1, **configs: str) -> None:
    request = create_v7.CreateTopicsRequest(
        topics=(
            create_v7.CreatableTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=1,
                assignments=(),
                configs=tuple(
                    create_v7.CreatableTopicConfig(name=k.replace("_", "."), value=v)
                    for k, v in configs.items()
                ),
            ),
        ),
        timeout=SECOND * 10,
        validate_only=False,
    )
    response = client.call(request)
    assert response.topics[0].error_code == ErrorCode.none, response


def produce(
    client: WireClient, topic: str, records: bytes, partition: int = 0, acks: int = -1
) -> produce_v9.PartitionProduceData:
    request = produce_v9.ProduceRequest(
        acks=acks,
        timeout=SECOND * 10,
        topic_data=(
            produce_v9.TopicProduceData(
                name=topic,
                partition_data=(produce_v9.PartitionProduceData(index=partition, records=records),),
            ),
        ),
    )
    return client.call(request).responses[0].partition_responses[0]


def fetch(client: WireClient, topic: str, offset: int, max_wait_ms: int = 0) -> object:
    request = fetch_v12.FetchRequest(
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        topics=(
            fetch_v12.FetchTopic(
                topic=topic,
                partitions=(
                    fetch_v12.FetchPartition(
                        partition=0, fetch_offset=offset, partition_max_bytes=1 << 20
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )
    return client.call(request).responses[0].partitions[0]


def test_api_versions_of_unknown_version_gets_v0_reply(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        payload = struct.pack(">hhih", 18, 77, 42, -1)
        client.send_raw(payload)
        response = client.receive(18, 0, 42)
        assert response.error_code == ErrorCode.unsupported_version
        keys = {api.api_key for api in response.api_keys}
        assert {0, 1, 2, 3, 18, 22} <= keys
        # The connection stays usable for the downgraded request.
        assert client.call(ApiVersionsV0()).error_code == ErrorCode.none


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00",  # shorter than a header
        struct.pack(">hhih", 9999, 0, 1, -1),  # unknown API key
        struct.pack(">hhih", 0, 99, 1, -1),  # unsupported Produce version
        struct.pack(">hhih", 3, 12, 1, 5) + b"ab",  # client id runs past the end
        struct.pack(">hhih", 19, 7, 1, -1) + os.urandom(64),  # junk body
    ],
)
def test_malformed_requests_close_the_connection_only(
    broker: BrokerProcess, payload: bytes
) -> None:
    with WireClient(broker.bootstrap) as bystander, WireClient(broker.bootstrap) as attacker:
        attacker.send_raw(payload)
        assert attacker.is_closed_by_peer()
        assert (
            bystander.call(
                ApiVersionsRequest(client_software_name="t", client_software_version="1")
            ).error_code
            == 0
        )


def test_oversized_request_is_refused_before_it_is_read(tmp_path: object) -> None:
    from pathlib import Path

    from tests.support.server import running_broker

    assert isinstance(tmp_path, Path)
    with running_broker(tmp_path / "data", "socket.request.max.bytes=1000") as broker:
        with WireClient(broker.bootstrap) as client:
            client.sock.sendall(struct.pack(">i", 1001))
            assert client.is_closed_by_peer()
        with WireClient(broker.bootstrap) as client:
            assert client.call(ApiVersionsV0()).error_code == ErrorCode.none


def test_corrupt_and_oversized_batches_get_their_error_codes(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "bad", max_message_bytes="2000")
        good = build_batch([b"ok"])
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF
        assert produce(client, "bad", bytes(corrupt)).error_code == ErrorCode.corrupt_message
        truncated = bytes(good[:-3])
        assert produce(client, "bad", truncated).error_code == ErrorCode.corrupt_message
        big = build_batch([os.urandom(3000)])
        assert produce(client, "bad", bytes(big)).error_code == ErrorCode.message_too_large
        assert produce(client, "bad", b"").error_code == ErrorCode.invalid_record
        assert produce(client, "bad", bytes(good), partition=7).error_code == (
            ErrorCode.unknown_topic_or_partition
        )
        assert produce(client, "bad", bytes(good), acks=2).error_code == (
            ErrorCode.invalid_required_acks
        )
        # None of it reached the log: the good batch lands at offset 0.
        accepted = produce(client, "bad", bytes(good))
        assert (accepted.error_code, accepted.base_offset) == (ErrorCode.none, 0)


def test_fetch_out_of_range_and_long_poll(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "f")
        produce(client, "f", bytes(build_batch([b"a", b"b", b"c"])))
        partition = fetch(client, "f", 5)
        assert partition.error_code == ErrorCode.offset_out_of_range
        partition = fetch(client, "f", 1)
        assert partition.error_code == ErrorCode.none
        assert partition.high_watermark == 3
        assert partition.records  # the batch holding offset 1
        empty = fetch(client, "f", 3, max_wait_ms=200)
        assert empty.error_code == ErrorCode.none
        assert not empty.records


def test_invalid_and_unknown_topics_in_metadata(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        request = metadata_v12.MetadataRequest(
            topics=(
                metadata_v12.MetadataRequestTopic(name="bad topic!", topic_id=None),
                metadata_v12.MetadataRequestTopic(name="fresh", topic_id=None),
            ),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
        topics = {t.name: t for t in client.call(request).topics}
        assert topics["bad topic!"].error_code == ErrorCode.invalid_topic_exception
        assert topics["fresh"].error_code == ErrorCode.unknown_topic_or_partition


def test_idempotent_duplicates_and_gaps(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "idem")
        init = client.call(
            init_v4.InitProducerIdRequest(
                transactional_id=None,
                transaction_timeout=SECOND * 60,
                producer_id=-1,
                producer_epoch=-1,
            )
        )
        assert init.error_code == ErrorCode.none
        pid = init.producer_id

        def batch(sequence: int, count: int = 2) -> bytes:
            values = [f"s{sequence + n}".encode() for n in range(count)]
            return bytes(
                build_batch(values, producer_id=pid, producer_epoch=0, base_sequence=sequence)
            )

        assert produce(client, "idem", batch(0)).base_offset == 0
        assert produce(client, "idem", batch(2)).base_offset == 2
        duplicate = produce(client, "idem", batch(0))
        assert (duplicate.error_code, duplicate.base_offset) == (ErrorCode.none, 0)
        gap = produce(client, "idem", batch(10))
        assert gap.error_code == ErrorCode.out_of_order_sequence_number
        assert produce(client, "idem", batch(4)).base_offset == 4
        broker.restart(hard=True)
    with WireClient(broker.bootstrap) as client:
        # Producer state survives kill -9: the retry is still a duplicate.
        duplicate = produce(client, "idem", batch(4))
        assert (duplicate.error_code, duplicate.base_offset) == (ErrorCode.none, 4)
        assert produce(client, "idem", batch(6)).base_offset == 6
        second = client.call(
            init_v4.InitProducerIdRequest(
                transactional_id=None,
                transaction_timeout=SECOND * 60,
                producer_id=-1,
                producer_epoch=-1,
            )
        )
        assert second.producer_id > pid, "producer ids are never reused after a restart"


def test_list_offsets_delete_records_and_configs(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "lo")
        for n in range(5):
            produce(client, "lo", bytes(build_batch([b"x"], timestamps=[1_000_000 + n * 10])))

        def list_offset(timestamp: int) -> tuple[int, int]:
            request = list_offsets_v7.ListOffsetsRequest(
                replica_id=-1,
                isolation_level=0,
                topics=(
                    list_offsets_v7.ListOffsetsTopic(
                        name="lo",
                        partitions=(
                            list_offsets_v7.ListOffsetsPartition(
                                partition_index=0, timestamp=timestamp
                            ),
                        ),
                    ),
                ),
            )
            found = client.call(request).topics[0].partitions[0]
            return found.offset, found.timestamp

        assert list_offset(-2)[0] == 0
        assert list_offset(-1)[0] == 5
        assert list_offset(-3) == (4, 1_000_040)
        assert list_offset(1_000_015) == (2, 1_000_020)
        assert list_offset(9_000_000) == (-1, -1)

        delete = client.call(
            delete_records_v2.DeleteRecordsRequest(
                topics=(
                    delete_records_v2.DeleteRecordsTopic(
                        name="lo",
                        partitions=(
                            delete_records_v2.DeleteRecordsPartition(partition_index=0, offset=3),
                        ),
                    ),
                ),
                timeout=SECOND * 10,
            )
        )
        assert delete.topics[0].partitions[0].low_watermark == 3
        assert list_offset(-2)[0] == 3
        assert fetch(client, "lo", 1).error_code == ErrorCode.offset_out_of_range

        alter = client.call(
            alter_v1.IncrementalAlterConfigsRequest(
                resources=(
                    alter_v1.AlterConfigsResource(
                        resource_type=2,
                        resource_name="lo",
                        configs=(
                            alter_v1.AlterableConfig(
                                name="retention.ms", config_operation=0, value="1000"
                            ),
                        ),
                    ),
                ),
                validate_only=False,
            )
        )
        assert alter.responses[0].error_code == ErrorCode.none
        bad = client.call(
            alter_v1.IncrementalAlterConfigsRequest(
                resources=(
                    alter_v1.AlterConfigsResource(
                        resource_type=2,
                        resource_name="lo",
                        configs=(
                            alter_v1.AlterableConfig(name="no.such", config_operation=0, value="1"),
                        ),
                    ),
                ),
                validate_only=False,
            )
        )
        assert bad.responses[0].error_code == ErrorCode.invalid_config
        assert "no.such" in bad.responses[0].error_message


def test_producer_state_is_snapshotted_on_roll_and_survives_kill_9(tmp_path: object) -> None:
    from pathlib import Path

    from tests.support.server import running_broker

    assert isinstance(tmp_path, Path)
    with running_broker(tmp_path / "data") as broker:
        with WireClient(broker.bootstrap) as client:
            create_topic(client, "rolls", segment_bytes="300")
            init = client.call(
                init_v4.InitProducerIdRequest(
                    transactional_id=None,
                    transaction_timeout=SECOND * 60,
                    producer_id=-1,
                    producer_epoch=-1,
                )
            )
            pid = init.producer_id
            for sequence in range(0, 20, 2):
                records = build_batch(
                    [b"v" * 100, b"w" * 100],
                    producer_id=pid,
                    producer_epoch=0,
                    base_sequence=sequence,
                )
                assert produce(client, "rolls", bytes(records)).error_code == ErrorCode.none
        snapshots = sorted((broker.data_dir / "rolls-0").glob("*.snapshot"))
        assert snapshots, "a roll writes a producer snapshot"
        broker.restart(hard=True)
        with WireClient(broker.bootstrap) as client:
            retry = build_batch(
                [b"v" * 100, b"w" * 100], producer_id=pid, producer_epoch=0, base_sequence=18
            )
            duplicate = produce(client, "rolls", bytes(retry))
            assert (duplicate.error_code, duplicate.base_offset) == (ErrorCode.none, 18)
            gap = build_batch([b"x"], producer_id=pid, producer_epoch=0, base_sequence=25)
            assert produce(client, "rolls", bytes(gap)).error_code == (
                ErrorCode.out_of_order_sequence_number
            )


def test_failed_acks_0_produce_closes_the_connection(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "zero")
        request = produce_v9.ProduceRequest(
            acks=0,
            timeout=SECOND,
            topic_data=(
                produce_v9.TopicProduceData(
                    name="zero",
                    partition_data=(
                        produce_v9.PartitionProduceData(
                            index=0, records=bytes(build_batch([b"a"]))
                        ),
                    ),
                ),
            ),
        )
        client.send(request)  # fine: no answer, connection stays open
        assert client.call(ApiVersionsV0()).error_code == ErrorCode.none
        bad = produce_v9.ProduceRequest(
            acks=0,
            timeout=SECOND,
            topic_data=(
                produce_v9.TopicProduceData(
                    name="zero",
                    partition_data=(produce_v9.PartitionProduceData(index=9, records=b"junk"),),
                ),
            ),
        )
        client.send(bad)
        assert client.is_closed_by_peer()
    with WireClient(broker.bootstrap) as client:
        assert fetch(client, "zero", 0).high_watermark == 1


def test_connection_limits_and_idle_timeout(tmp_path: object) -> None:
    from pathlib import Path

    from tests.support.server import running_broker

    assert isinstance(tmp_path, Path)
    settings = ("max.connections.per.ip=3", "connections.max.idle.ms=300")
    with running_broker(tmp_path / "data", *settings) as broker:
        clients = [WireClient(broker.bootstrap) for _ in range(3)]
        try:
            for client in clients:
                assert client.call(ApiVersionsV0()).error_code == ErrorCode.none
            with WireClient(broker.bootstrap) as extra:
                assert extra.is_closed_by_peer(), "the fourth connection from one IP is refused"
            # Silent connections are closed after connections.max.idle.ms.
            assert all(client.is_closed_by_peer(timeout=5) for client in clients)
        finally:
            for client in clients:
                client.close()
        with WireClient(broker.bootstrap) as again:
            assert again.call(ApiVersionsV0()).error_code == ErrorCode.none
        assert "max.connections.per.ip=3 reached" in broker.log()
        assert "idle for more than" in broker.log()
