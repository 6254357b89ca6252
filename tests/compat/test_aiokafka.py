"""aiokafka 0.14 against the real broker: produce, assign and read back."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import AIOKafkaProducer
from aiokafka import TopicPartition

from tests.support.server import BrokerProcess

pytestmark = pytest.mark.compat


async def produce_and_consume(bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = []
        for n in range(300):
            key = f"k{n % 5}".encode()
            value = f"v{n}".encode()
            await producer.send("aio", key=key, value=value, partition=n % 5 % 2)
            sent.append((key, value))
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition("aio", 0), TopicPartition("aio", 1)])
        await consumer.seek_to_beginning()
        received = []
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    received.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    for key in {k for k, _ in sent}:
        assert [v for k, v in received if k == key] == [v for k, v in sent if k == key]


def test_aiokafka_round_trip(broker: BrokerProcess) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin import NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("aio", 2, 1)])["aio"].result(timeout=10)
    asyncio.run(produce_and_consume(broker.bootstrap))
