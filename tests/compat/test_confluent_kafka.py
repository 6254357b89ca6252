"""confluent-kafka (librdkafka 2.16) against the real broker: idempotent produce, assign, admin."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import KafkaException
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import ConfigResource
from confluent_kafka.admin import NewPartitions
from confluent_kafka.admin import NewTopic

from tests.support.server import BrokerProcess

pytestmark = pytest.mark.compat

KEYS = [f"key-{n}".encode() for n in range(12)]


def create_topic(bootstrap: str, name: str, partitions: int, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=configs)])
    futures[name].result(timeout=10)


def produce_keyed(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    sent = []
    failures: list[KafkaError] = []

    def report(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    for n in range(count):
        key = KEYS[n % len(KEYS)]
        value = f"{key.decode()}:{n}".encode()
        producer.produce(topic, value=value, key=key, on_delivery=report)
        sent.append((key, value))
        if n % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert not failures
    return sent


def consume_assigned(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 30
) -> dict[int, list[tuple[bytes, bytes, int]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compat-assign",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    by_partition: dict[int, list[tuple[bytes, bytes, int]]] = defaultdict(list)
    received = 0
    deadline = time.monotonic() + timeout
    try:
        while received < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            by_partition[message.partition()].append(
                (message.key(), message.value(), message.offset())
            )
            received += 1
    finally:
        consumer.close()
    return by_partition


def assert_per_key_order(
    sent: list[tuple[bytes, bytes]], by_partition: dict[int, list[tuple[bytes, bytes, int]]]
) -> None:
    received = [(k, v) for records in by_partition.values() for k, v, _ in records]
    assert sorted(received) == sorted(sent)
    key_partition: dict[bytes, int] = {}
    for partition, records in by_partition.items():
        offsets = [offset for _, _, offset in records]
        assert offsets == list(range(len(records))), "offsets are dense from 0"
        for key, _, _ in records:
            assert key_partition.setdefault(key, partition) == partition, (
                "a key stays in one partition"
            )
    for key in KEYS:
        expected_values = [v for k, v in sent if k == key]
        got = [v for records in by_partition.values() for k, v, _ in records if k == key]
        assert got == expected_values, f"per-key order for {key!r}"


def test_keyed_produce_and_assign_consume_keep_per_key_order(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "orders", 3)
    sent = produce_keyed(broker.bootstrap, "orders", 3000)
    by_partition = consume_assigned(broker.bootstrap, "orders", 3, len(sent))
    assert_per_key_order(sent, by_partition)


def test_records_survive_clean_restart_and_kill_9(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "durable", 3)
    sent = produce_keyed(broker.bootstrap, "durable", 1000)
    broker.restart()
    assert "opened after a clean stop" in broker.log().splitlines()[-1]
    sent += produce_keyed(broker.bootstrap, "durable", 1000)
    broker.restart(hard=True)
    assert "recovered" in broker.log().splitlines()[-1]
    sent += produce_keyed(broker.bootstrap, "durable", 500)
    by_partition = consume_assigned(broker.bootstrap, "durable", 3, len(sent))
    # Producers restart their sequences per run; order per key holds within and across runs.
    received = sorted((k, v) for records in by_partition.values() for k, v, _ in records)
    assert received == sorted(sent)
    for records in by_partition.values():
        assert [offset for _, _, offset in records] == list(range(len(records)))


def test_admin_create_describe_alter_list_delete(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic("admin-topic", 2, 1, config={"retention.ms": "60000"})])
    futures["admin-topic"].result(timeout=10)
    duplicate = admin.create_topics([NewTopic("admin-topic", 2, 1)])
    with pytest.raises(KafkaException) as raised:
        duplicate["admin-topic"].result(timeout=10)
    assert raised.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics["admin-topic"].partitions) == 2

    resource = ConfigResource(ConfigResource.Type.TOPIC, "admin-topic")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "60000"
    assert configs["segment.bytes"].is_default

    admin.create_partitions([NewPartitions("admin-topic", 4)])["admin-topic"].result(timeout=10)
    assert len(admin.list_topics(timeout=10).topics["admin-topic"].partitions) == 4

    admin.delete_topics(["admin-topic"])["admin-topic"].result(timeout=10)
    assert "admin-topic" not in admin.list_topics(timeout=10).topics


def test_invalid_topic_name_is_refused(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic("bad name!", 1, 1)])
    with pytest.raises(KafkaException) as raised:
        futures["bad name!"].result(timeout=10)
    assert raised.value.args[0].code() == KafkaError.TOPIC_EXCEPTION


def test_offsets_for_times_and_watermarks(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "timed", 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    base = 1_700_000_000_000
    for n in range(10):
        producer.produce("timed", value=str(n).encode(), timestamp=base + n * 1000)
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition("timed", 0), timeout=10) == (0, 10)
        [found] = consumer.offsets_for_times([TopicPartition("timed", 0, base + 4500)], timeout=10)
        assert found.offset == 5
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_stored_as_sent_and_read_back(
    broker: BrokerProcess, codec: str
) -> None:
    topic = f"compressed-{codec}"
    create_topic(broker.bootstrap, topic, 1)
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20}
    )
    values = [f"{codec}-{n}-".encode() * 20 for n in range(500)]
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    segment = next((broker.data_dir / f"{topic}-0").glob("*.log"))
    # (librdkafka compresses with lz4 only when FindCoordinator v0 is advertised.)
    assert segment.stat().st_size < sum(len(v) for v in values) / 2, "kept compressed"
    by_partition = consume_assigned(broker.bootstrap, topic, 1, len(values))
    assert [value for _, value, _ in by_partition[0]] == values


def test_log_append_time_topic_stamps_broker_time(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "stamped", 1, **{"message.timestamp.type": "LogAppendTime"})
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    before = int(time.time() * 1000)
    producer.produce("stamped", value=b"x", timestamp=1_000)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "stamped", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition("stamped", 0, 0)])
    try:
        message = None
        deadline = time.monotonic() + 10
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None
        kind, stamp = message.timestamp()
        assert kind == 2  # TIMESTAMP_LOG_APPEND_TIME
        assert stamp >= before
    finally:
        consumer.close()


def test_large_message_over_fetch_limits_is_still_delivered(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "big", 1, **{"max.message.bytes": "3000000"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 3_000_000})
    value = b"b" * 2_500_000
    producer.produce("big", value=value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "big",
            "enable.auto.commit": False,
            "fetch.max.bytes": 1_000_000,
            "max.partition.fetch.bytes": 100_000,
        }
    )
    consumer.assign([TopicPartition("big", 0, 0)])
    try:
        message = None
        deadline = time.monotonic() + 15
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None
        assert message.value() == value
    finally:
        consumer.close()
