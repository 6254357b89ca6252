"""kafka-python 3 against the real broker: its default idempotent producer, admin, assign()."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer
from kafka import KafkaProducer
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from tests.support.server import BrokerProcess

pytestmark = pytest.mark.compat


def test_admin_creates_lists_and_deletes_topics(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="compat-admin")
    try:
        admin.create_topics([NewTopic("kp-admin", num_partitions=3, replication_factor=1)])
        assert "kp-admin" in admin.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("kp-admin", num_partitions=3, replication_factor=1)])
        [description] = admin.describe_topics(["kp-admin"])
        assert len(description["partitions"]) == 3
        admin.delete_topics(["kp-admin"])
        deadline = time.monotonic() + 10
        while "kp-admin" in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "kp-admin" not in admin.list_topics()
    finally:
        admin.close()


def test_idempotent_producer_keyed_messages_read_back_in_order(broker: BrokerProcess) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kp-keys", num_partitions=3, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    assert producer.config["enable_idempotence"]
    sent: dict[bytes, list[bytes]] = {}
    futures = []
    for n in range(600):
        key = f"k{n % 7}".encode()
        value = f"{n}".encode()
        sent.setdefault(key, []).append(value)
        futures.append(producer.send("kp-keys", key=key, value=value))
    producer.flush(30)
    for future in futures:
        future.get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition("kp-keys", p) for p in range(3)])
    consumer.seek_to_beginning()
    received: dict[bytes, list[bytes]] = {}
    partitions_of: dict[bytes, set[int]] = {}
    deadline = time.monotonic() + 30
    total = 0
    while total < 600 and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                received.setdefault(record.key, []).append(record.value)
                partitions_of.setdefault(record.key, set()).add(tp.partition)
                total += 1
    consumer.close()
    assert received == sent
    assert all(len(p) == 1 for p in partitions_of.values())
