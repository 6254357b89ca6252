"""A compacted topic, cleaned by the running broker, read back by every client."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from tests.compat.test_confluent_kafka import create_topic
from tests.compat.test_kcat import KCAT
from tests.support.server import BrokerProcess
from tests.support.server import running_broker

pytestmark = pytest.mark.compat

Seen = dict[bytes, bytes | None]


@pytest.fixture
def cleaning_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with running_broker(tmp_path / "data", "log.cleaner.backoff.ms=200") as broker:
        yield broker


def last_values(pairs: list[tuple[bytes, bytes | None]]) -> Seen:
    latest: Seen = {}
    for key, value in pairs:
        latest[key] = value
    return latest


def read_confluent(bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "c", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition("compacted", 0, 0)])
    out = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 2:
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        idle_since = time.monotonic()
        out.append((message.key(), message.value()))
    consumer.close()
    return out


def read_kafka_python(bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([KpTopicPartition("compacted", 0)])
    consumer.seek_to_beginning()
    out = []
    for _ in range(8):
        for records in consumer.poll(timeout_ms=300).values():
            out.extend((r.key, r.value) for r in records)
    consumer.close()
    return out


def read_aiokafka(bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    async def run() -> list[tuple[bytes, bytes | None]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        out = []
        try:
            consumer.assign([AioTopicPartition("compacted", 0)])
            await consumer.seek_to_beginning()
            for _ in range(8):
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend((r.key, r.value) for r in records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def read_kcat(bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    assert KCAT is not None
    result = subprocess.run(
        [KCAT, "-b", bootstrap, "-C", "-t", "compacted", "-e", "-o", "beginning",
         "-Z", "-f", "%k=%s\\n"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    out: list[tuple[bytes, bytes | None]] = []
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        out.append((key.encode(), None if value == "NULL" else value.encode()))
    return out


def test_compacted_topic_keeps_latest_per_key_for_every_client(
    cleaning_broker: BrokerProcess,
) -> None:
    bootstrap = cleaning_broker.bootstrap
    create_topic(
        bootstrap, "compacted", 1,
        **{"cleanup.policy": "compact", "segment.bytes": "2000",
           "min.cleanable.dirty.ratio": "0.01"},
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent: list[tuple[bytes, bytes | None]] = []
    for round_ in range(30):
        for key in range(10):
            value = f"v{round_}".encode()
            producer.produce("compacted", key=f"k{key}".encode(), value=value)
            sent.append((f"k{key}".encode(), value))
        producer.flush(10)
    producer.produce("compacted", key=b"k3", value=None)  # tombstone
    assert producer.flush(10) == 0
    sent.append((b"k3", None))
    errors: list[object] = []
    producer.produce(
        "compacted", value=b"no key", on_delivery=lambda error, _message: errors.append(error)
    )
    producer.flush(10)
    assert errors and errors[0] is not None, "a compacted topic refuses records without keys"
    expected = last_values(sent)
    deadline = time.monotonic() + 30
    segments = lambda: list((cleaning_broker.data_dir / "compacted-0").glob("*.log"))  # noqa: E731
    while time.monotonic() < deadline:
        before = len(read_kcat(bootstrap))
        if before < len(sent) / 3:
            break
        time.sleep(0.3)
    assert len(read_kcat(bootstrap)) < len(sent) / 3, f"cleaned: {segments()}"
    for reader in (read_confluent, read_kafka_python, read_aiokafka, read_kcat):
        got = reader(bootstrap)
        assert last_values(got) == expected, reader.__name__
        keys_in_order = [k for k, _ in got]
        assert len(keys_in_order) < len(sent), reader.__name__
