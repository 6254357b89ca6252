"""Consumer groups through every client: splitting partitions, failover, resuming from committed
offsets across restarts (clean and kill -9), and independent groups (pub/sub)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from kafka import KafkaConsumer

from tests.compat.test_confluent_kafka import create_topic
from tests.compat.test_kcat import KCAT
from tests.support.server import BrokerProcess
from tests.support.server import running_broker

pytestmark = pytest.mark.compat

FAST_GROUPS = ("group.initial.rebalance.delay.ms=200",)


@pytest.fixture
def groups_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with running_broker(tmp_path / "data", *FAST_GROUPS) as broker:
        yield broker


def produce(bootstrap: str, topic: str, start: int, count: int) -> list[bytes]:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    values = [f"m{n}".encode() for n in range(start, start + count)]
    for value in values:
        producer.produce(topic, key=value, value=value)
    assert producer.flush(30) == 0
    return values


def confluent_consumer(bootstrap: str, group: str, **extra: object) -> Consumer:
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "enable.auto.commit": False,
    }
    config.update(extra)
    return Consumer(config)


def drain(consumer: Consumer, expected: int, timeout: float = 30) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.3)
        if message is None or message.error() is not None:
            continue
        values.append(message.value())
    return values


def wait_for_assignment(consumers: list[Consumer], partitions: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for consumer in consumers:
            consumer.poll(0.1)
        assigned = [len(consumer.assignment()) for consumer in consumers]
        if sum(assigned) == partitions and all(assigned):
            return
    raise AssertionError(f"assignment never settled: {assigned}")


def test_members_split_partitions_and_take_over_when_one_leaves(
    groups_broker: BrokerProcess,
) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "split", 6)
    consumers = [confluent_consumer(bootstrap, "splitters") for _ in range(3)]
    for consumer in consumers:
        consumer.subscribe(["split"])
    wait_for_assignment(consumers, 6)
    owned = [{tp.partition for tp in consumer.assignment()} for consumer in consumers]
    assert set().union(*owned) == set(range(6))
    assert sum(len(o) for o in owned) == 6, "no partition is owned twice"
    sent = produce(bootstrap, "split", 0, 300)
    received: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        for consumer in consumers:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                received.append(message.value())
                consumer.commit(message=message, asynchronous=False)
    assert sorted(received) == sorted(sent), "each record to exactly one member"
    consumers[2].close()
    wait_for_assignment(consumers[:2], 6)
    more = produce(bootstrap, "split", 300, 100)
    received = []
    deadline = time.monotonic() + 30
    while len(received) < len(more) and time.monotonic() < deadline:
        for consumer in consumers[:2]:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                received.append(message.value())
    assert sorted(received) == sorted(more), "the leaver's partitions moved, from its commits"
    for consumer in consumers[:2]:
        consumer.close()


CRASHING_MEMBER = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "crashers",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    consumer.subscribe(["crash"])
    while True:
        consumer.poll(0.2)
        if consumer.assignment():
            print("assigned", flush=True)
    """
)


def test_a_killed_member_times_out_and_its_partitions_move(groups_broker: BrokerProcess) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "crash", 4)
    survivor = confluent_consumer(bootstrap, "crashers")
    survivor.subscribe(["crash"])
    with subprocess.Popen(
        [sys.executable, "-c", CRASHING_MEMBER, bootstrap], stdout=subprocess.PIPE, text=True
    ) as victim:
        try:
            assert victim.stdout is not None
            victim.stdout.readline()  # the victim owns partitions now
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(survivor.assignment()) != 2:
                survivor.poll(0.2)
            assert len(survivor.assignment()) == 2
            victim.kill()
            victim.wait()
            deadline = time.monotonic() + 30  # session timeout 6 s, then a rebalance
            while time.monotonic() < deadline and len(survivor.assignment()) != 4:
                survivor.poll(0.2)
            assert len(survivor.assignment()) == 4
        finally:
            victim.kill()
            survivor.close()


@pytest.mark.parametrize("hard", [False, True], ids=["clean-restart", "kill-9"])
def test_group_resumes_from_committed_offsets_after_restart(
    groups_broker: BrokerProcess, hard: bool
) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "resume", 3)
    first = produce(bootstrap, "resume", 0, 90)
    consumer = confluent_consumer(bootstrap, "resumers")
    consumer.subscribe(["resume"])
    got = drain(consumer, len(first))
    assert sorted(got) == sorted(first)
    consumer.commit(asynchronous=False)
    consumer.close()
    groups_broker.restart(hard=hard)
    second = produce(groups_broker.bootstrap, "resume", 90, 30)
    consumer = confluent_consumer(groups_broker.bootstrap, "resumers")
    consumer.subscribe(["resume"])
    got = drain(consumer, len(second))
    extra = drain(consumer, 1, timeout=2)
    consumer.close()
    assert sorted(got) == sorted(second), "resumed, not redelivered"
    assert extra == []


def test_two_groups_each_get_every_message(groups_broker: BrokerProcess) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "fanout", 2)
    sent = produce(bootstrap, "fanout", 0, 100)
    for group in ("billing", "audit"):
        consumer = confluent_consumer(bootstrap, group)
        consumer.subscribe(["fanout"])
        assert sorted(drain(consumer, len(sent))) == sorted(sent)
        consumer.close()


# --- the same ground through kafka-python, aiokafka and kcat -G ---------------------------------


def kafka_python_read(bootstrap: str, group: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(
        "clients",
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=300).values():
            values.extend(record.value for record in records)
    if expected == 0:
        for records in consumer.poll(timeout_ms=2000).values():
            values.extend(record.value for record in records)
    consumer.commit()
    consumer.close()
    return values


def aiokafka_read(bootstrap: str, group: str, expected: int) -> list[bytes]:
    async def run() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            "clients",
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            deadline = time.monotonic() + 30
            while len(values) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    values.extend(record.value for record in records if record.value)
            if expected == 0:
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    values.extend(record.value for record in records if record.value)
            await consumer.commit()
        finally:
            await consumer.stop()
        return values

    return asyncio.run(run())


def kcat_read(bootstrap: str, group: str, expected: int) -> list[bytes]:
    assert KCAT is not None
    result = subprocess.run(
        # Not "-o beginning": with -G, kcat would apply it over the committed offsets.
        [KCAT, "-b", bootstrap, "-G", group, "clients", "-e", "-f", "%s\\n",
         "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000",
         "-X", "enable.auto.commit=true"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.encode() for line in result.stdout.splitlines()]


@pytest.mark.parametrize(
    "read", [kafka_python_read, aiokafka_read, kcat_read], ids=["kafka-python", "aiokafka", "kcat"]
)
def test_subscribe_commit_resume_and_replay(groups_broker: BrokerProcess, read: object) -> None:
    assert callable(read)
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "clients", 3)
    first = produce(bootstrap, "clients", 0, 60)
    assert sorted(read(bootstrap, "subscribers", len(first))) == sorted(first)
    second = produce(bootstrap, "clients", 60, 20)
    groups_broker.restart(hard=True)
    resumed = read(groups_broker.bootstrap, "subscribers", len(second))
    assert sorted(resumed) == sorted(second), "resumed from the committed offsets"
    replay = read(groups_broker.bootstrap, "newcomers", len(first) + len(second))
    assert sorted(replay) == sorted(first + second), "a new group replays everything"


def test_cooperative_sticky_members_share_partitions(groups_broker: BrokerProcess) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "sticky", 4)
    strategy = {"partition.assignment.strategy": "cooperative-sticky"}
    first = confluent_consumer(bootstrap, "stickies", **strategy)
    first.subscribe(["sticky"])
    wait_for_assignment([first], 4)
    second = confluent_consumer(bootstrap, "stickies", **strategy)
    second.subscribe(["sticky"])
    wait_for_assignment([first, second], 4)
    owned = [{tp.partition for tp in c.assignment()} for c in (first, second)]
    assert owned[0] | owned[1] == set(range(4)) and not owned[0] & owned[1]
    sent = produce(bootstrap, "sticky", 0, 80)
    received: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        for consumer in (first, second):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                received.append(message.value())
    assert sorted(received) == sorted(sent)
    second.close()
    first.close()


def test_static_member_comes_back_to_its_partitions(groups_broker: BrokerProcess) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "static", 4)

    def member(instance: str) -> Consumer:
        consumer = confluent_consumer(
            bootstrap, "statics", **{"group.instance.id": instance, "session.timeout.ms": 20000}
        )
        consumer.subscribe(["static"])
        return consumer

    a, b = member("host-a"), member("host-b")
    wait_for_assignment([a, b], 4)
    owned_by_b = {tp.partition for tp in b.assignment()}
    b.close()  # a static member sends no LeaveGroup: its partitions wait for it
    quiet_until = time.monotonic() + 2
    while time.monotonic() < quiet_until:
        a.poll(0.1)
    assert len(a.assignment()) == 2, "no rebalance when a static member goes away briefly"
    b = member("host-b")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not b.assignment():
        b.poll(0.2)
        a.poll(0.05)
    assert {tp.partition for tp in b.assignment()} == owned_by_b
    a.close()
    b.close()


def test_standalone_commits_for_assigned_consumers(groups_broker: BrokerProcess) -> None:
    bootstrap = groups_broker.bootstrap
    create_topic(bootstrap, "standalone", 2)
    consumer = confluent_consumer(bootstrap, "assigners")
    consumer.assign([TopicPartition("standalone", 0), TopicPartition("standalone", 1)])
    consumer.commit(
        offsets=[TopicPartition("standalone", 0, 5), TopicPartition("standalone", 1, 7)],
        asynchronous=False,
    )
    committed = consumer.committed(
        [TopicPartition("standalone", 0), TopicPartition("standalone", 1)], timeout=10
    )
    assert [tp.offset for tp in committed] == [5, 7]
    consumer.close()
