"""Every client writes keyed records into one multi-partition topic; after a clean restart and a
kill -9, every client reads all of them back by assignment, in per-key order."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from kafka import KafkaConsumer
from kafka import KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from tests.compat.test_confluent_kafka import create_topic
from tests.compat.test_kcat import KCAT
from tests.support.server import BrokerProcess

pytestmark = pytest.mark.compat

TOPIC = "shared"
PARTITIONS = 4
PER_CLIENT = 200

Record = tuple[bytes, bytes]


def records_for(client: str) -> list[Record]:
    return [(f"{client}-k{n % 6}".encode(), f"{client}-{n}".encode()) for n in range(PER_CLIENT)]


def produce_confluent(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records_for("confluent"):
        producer.produce(TOPIC, key=key, value=value)
    assert producer.flush(30) == 0


def produce_kafka_python(bootstrap: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    futures = [producer.send(TOPIC, key=k, value=v) for k, v in records_for("kafkapython")]
    producer.flush(30)
    for future in futures:
        future.get(timeout=10)
    producer.close()


def produce_aiokafka(bootstrap: str) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            futures = [await producer.send(TOPIC, key=k, value=v) for k, v in records_for("aio")]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def produce_kcat(bootstrap: str) -> None:
    assert KCAT is not None
    lines = "".join(f"{k.decode()}:{v.decode()}\n" for k, v in records_for("kcat"))
    subprocess.run(
        [KCAT, "-b", bootstrap, "-P", "-t", TOPIC, "-K", ":"],
        input=lines,
        text=True,
        check=True,
        timeout=60,
    )


def read_confluent(bootstrap: str, expected: int) -> dict[int, list[Record]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "all-clients", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    out: dict[int, list[Record]] = defaultdict(list)
    deadline = time.monotonic() + 30
    count = 0
    while count < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None
        out[message.partition()].append((message.key(), message.value()))
        count += 1
    consumer.close()
    return out


def read_kafka_python(bootstrap: str, expected: int) -> dict[int, list[Record]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([KpTopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    out: dict[int, list[Record]] = defaultdict(list)
    deadline = time.monotonic() + 30
    count = 0
    while count < expected and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            out[tp.partition].extend((r.key, r.value) for r in records)
            count += len(records)
    consumer.close()
    return out


def read_aiokafka(bootstrap: str, expected: int) -> dict[int, list[Record]]:
    async def run() -> dict[int, list[Record]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        out: dict[int, list[Record]] = defaultdict(list)
        try:
            consumer.assign([AioTopicPartition(TOPIC, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            count = 0
            async with asyncio.timeout(30):
                while count < expected:
                    for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                        out[tp.partition].extend((r.key, r.value) for r in records)
                        count += len(records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def read_kcat(bootstrap: str, expected: int) -> dict[int, list[Record]]:
    assert KCAT is not None
    result = subprocess.run(
        [KCAT, "-b", bootstrap, "-C", "-t", TOPIC, "-e", "-o", "beginning", "-f", "%p %k %s\\n"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out: dict[int, list[Record]] = defaultdict(list)
    for line in result.stdout.splitlines():
        partition, key, value = line.split(" ")
        out[int(partition)].append((key.encode(), value.encode()))
    return out


def check(read: dict[int, list[Record]], sent: list[Record]) -> None:
    received = [record for records in read.values() for record in records]
    assert sorted(received) == sorted(sent)
    for key in {k for k, _ in sent}:
        partitions = {p for p, records in read.items() for k, _ in records if k == key}
        assert len(partitions) == 1, f"{key!r} spread over {partitions}"
        [partition] = partitions
        got = [v for k, v in read[partition] if k == key]
        assert got == [v for k, v in sent if k == key], f"per-key order of {key!r}"


def test_all_clients_write_and_read_one_topic_across_restarts(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    produce_confluent(broker.bootstrap)
    produce_kafka_python(broker.bootstrap)
    broker.restart()
    produce_aiokafka(broker.bootstrap)
    produce_kcat(broker.bootstrap)
    broker.restart(hard=True)
    sent = [r for c in ("confluent", "kafkapython", "aio", "kcat") for r in records_for(c)]
    for reader in (read_confluent, read_kafka_python, read_aiokafka, read_kcat):
        check(reader(broker.bootstrap, len(sent)), sent)
