"""Queues through confluent-kafka's ShareConsumer (KIP-932 share groups): workers sharing one
partition, hung workers' records coming back after the lock, poison records dead-lettered,
delayed delivery, and nothing lost or accepted twice across a broker restart or kill -9.

The broker runs with a 1 s record lock and 3 deliveries so these run fast;
MILLPOND_SHARE_LOCK_MS and MILLPOND_SHARE_DELIVERY_LIMIT run them with others (the landing
check uses 3000 and 3).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import AcknowledgeType
from confluent_kafka import Consumer
from confluent_kafka import Message
from confluent_kafka import Producer
from confluent_kafka import ShareConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import AlterConfigOpType
from confluent_kafka.admin import ConfigEntry
from confluent_kafka.admin import ConfigResource
from confluent_kafka.admin import NewTopic
from confluent_kafka.admin import ResourceType

from tests.cli.support import run_cli
from tests.support.server import BrokerProcess
from tests.support.server import running_broker

pytestmark = pytest.mark.compat

LOCK_MS = int(os.environ.get("MILLPOND_SHARE_LOCK_MS", "1000"))
DELIVERY_LIMIT = int(os.environ.get("MILLPOND_SHARE_DELIVERY_LIMIT", "3"))
SHARE_SETTINGS = (
    f"group.share.record.lock.duration.ms={LOCK_MS}",
    f"group.share.delivery.count.limit={DELIVERY_LIMIT}",
    "group.share.heartbeat.interval.ms=500",
    "group.share.session.timeout.ms=6000",
)


@pytest.fixture
def share_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with running_broker(tmp_path / "data", *SHARE_SETTINGS) as broker:
        yield broker


def create_topic(bootstrap: str, name: str, partitions: int = 1, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, config=configs)])
    futures[name].result(15)


def set_group_configs(bootstrap: str, group: str, **configs: str) -> None:
    """IncrementalAlterConfigs on the GROUP resource, as kafka-configs --entity-type groups."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [
        ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(15)


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    headers: list[tuple[str, bytes]] | None = None,
    per_batch: int = 5,
) -> None:
    # Small batches, so several workers can take a share of one partition.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "batch.num.messages": per_batch, "linger.ms": 0}
    )
    for value in values:
        producer.produce(topic, key=value, value=value, headers=headers or [])
    assert producer.flush(30) == 0


def share_consumer(bootstrap: str, group: str, **extra: Any) -> ShareConsumer:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "group.id": group}
    config.update({key.replace("_", "."): value for key, value in extra.items()})
    return ShareConsumer(config)


def records(batch: Any) -> list[Message]:
    found = []
    for message in batch:
        assert message.error() is None, message.error()
        found.append(message)
    return found


def poll_until(
    consumer: ShareConsumer,
    done: Callable[[], bool],
    on_message: Callable[[Message], None],
    timeout: float = 30,
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for records"
        for message in records(consumer.poll(0.5)):
            on_message(message)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list[Message]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(message)
    finally:
        consumer.close()
    return found


def test_workers_share_one_partition_and_each_record_is_accepted_once(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "jobs")
    set_group_configs(bootstrap, "workers", share_auto_offset_reset="earliest")
    values = [f"job-{n}".encode() for n in range(300)]
    # Large batches: a worker acquires only its max.poll.records of one, the rest stay for others.
    produce(bootstrap, "jobs", values, per_batch=100)
    accepted: dict[str, list[bytes]] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            consumer = share_consumer(
                bootstrap, "workers", share_acknowledgement_mode="explicit", max_poll_records=10
            )
            consumer.subscribe(["jobs"])
            mine = accepted.setdefault(name, [])

            def handle(message: Message) -> None:
                time.sleep(0.002)  # some work, so the others get a turn
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
                with lock:
                    mine.append(message.value())

            def done() -> bool:
                with lock:
                    return sum(len(v) for v in accepted.values()) >= len(values)

            poll_until(consumer, done, handle)
            consumer.commit_sync()
            consumer.close()
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    everything = [value for values_of in accepted.values() for value in values_of]
    assert sorted(everything) == sorted(values), "a record was lost or accepted twice"
    assert all(accepted[name] for name in accepted), {k: len(v) for k, v in accepted.items()}


def test_a_hung_workers_records_come_back_after_the_lock_expires(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "tasks")
    set_group_configs(bootstrap, "crew", share_auto_offset_reset="earliest")
    values = [f"t{n}".encode() for n in range(20)]
    produce(bootstrap, "tasks", values, per_batch=100)

    hung = share_consumer(bootstrap, "crew", share_acknowledgement_mode="explicit")
    hung.subscribe(["tasks"])
    taken: list[Message] = []
    poll_until(hung, lambda: bool(taken), taken.append)
    taken_values = {m.value() for m in taken}
    assert all(m.delivery_count() == 1 for m in taken)
    # The hung worker neither acknowledges nor polls again; its lock runs out.

    rescuer = share_consumer(bootstrap, "crew", share_acknowledgement_mode="explicit")
    rescuer.subscribe(["tasks"])
    accepted: dict[bytes, int] = {}

    def accept(message: Message) -> None:
        rescuer.acknowledge(message)
        accepted[message.value()] = message.delivery_count()

    started = time.monotonic()
    poll_until(rescuer, lambda: len(accepted) == len(values), accept)
    rescuer.commit_sync()
    assert set(accepted) == set(values)
    redelivered = {value for value, count in accepted.items() if count == 2}
    assert redelivered == taken_values
    assert time.monotonic() - started >= (LOCK_MS / 1000) * 0.5
    rescuer.close()
    hung.close()


def test_poison_records_are_dead_lettered_with_their_reasons(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "orders")
    set_group_configs(bootstrap, "billing", share_auto_offset_reset="earliest")
    good = [f"order-{n}".encode() for n in range(10)]
    produce(bootstrap, "orders", [b"poison", *good, b"rejected"], headers=[("trace", b"abc")])

    consumer = share_consumer(bootstrap, "billing", share_acknowledgement_mode="explicit")
    consumer.subscribe(["orders"])
    accepted: list[bytes] = []
    poison_deliveries: list[int] = []

    def handle(message: Message) -> None:
        if message.value() == b"poison":
            poison_deliveries.append(message.delivery_count())
            consumer.acknowledge(message, AcknowledgeType.RELEASE)
        elif message.value() == b"rejected":
            consumer.acknowledge(message, AcknowledgeType.REJECT)
            accepted.append(b"<rejected>")
        else:
            consumer.acknowledge(message, AcknowledgeType.ACCEPT)
            accepted.append(message.value())

    poll_until(
        consumer, lambda: len(poison_deliveries) == DELIVERY_LIMIT and len(accepted) == 11, handle
    )
    consumer.commit_sync()
    assert poison_deliveries == list(range(1, DELIVERY_LIMIT + 1))
    # No fourth delivery: the poison record is archived.
    extra: list[Message] = []
    deadline = time.monotonic() + 2 * LOCK_MS / 1000
    while time.monotonic() < deadline:
        extra.extend(records(consumer.poll(0.3)))
    assert extra == []
    consumer.close()

    letters = read_topic(bootstrap, "dlq.billing", 2)
    # The rejected record is dead-lettered on its first delivery, the poison one on its last.
    assert [m.value() for m in letters] == [b"rejected", b"poison"]
    by_value = {m.value(): dict(m.headers() or []) for m in letters}
    poison = by_value[b"poison"]
    assert poison["trace"] == b"abc"
    assert poison["_dlq.errors.disposition"] == b"MAX_DELIVERY_ATTEMPTS_REACHED"
    assert poison["_dlq.errors.original.topic"] == b"orders"
    assert poison["_dlq.errors.original.partition"] == b"0"
    assert poison["_dlq.errors.original.offset"] == b"0"
    assert poison["_dlq.errors.group.id"] == b"billing"
    assert poison["_dlq.errors.delivery.count"] == str(DELIVERY_LIMIT).encode()
    rejected = by_value[b"rejected"]
    assert rejected["_dlq.errors.disposition"] == b"CLIENT_REJECTED"
    assert rejected["_dlq.errors.original.offset"] == b"11"
    assert rejected["_dlq.errors.delivery.count"] == b"1"
    assert letters[1].key() == b"poison"


def test_implicit_acknowledgement_accepts_what_was_polled(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "events")
    set_group_configs(bootstrap, "readers", share_auto_offset_reset="earliest")
    values = [f"e{n}".encode() for n in range(50)]
    produce(bootstrap, "events", values)
    first = share_consumer(bootstrap, "readers")  # implicit is librdkafka's default
    first.subscribe(["events"])
    seen: list[bytes] = []
    poll_until(first, lambda: len(seen) >= len(values), lambda m: seen.append(m.value()))
    # librdkafka accepts a poll's records on the next poll or commit, not on close: what a
    # closing consumer still holds is released (uncounted) for others.
    first.commit_sync()
    first.close()
    assert sorted(seen) == sorted(values)

    produce(bootstrap, "events", [b"late"])
    second = share_consumer(bootstrap, "readers")
    second.subscribe(["events"])
    later: list[bytes] = []
    poll_until(second, lambda: bool(later), lambda m: later.append(m.value()))
    deadline = time.monotonic() + 2 * LOCK_MS / 1000
    while time.monotonic() < deadline:
        later.extend(m.value() for m in records(second.poll(0.3)))
    second.close()
    assert later == [b"late"], "accepted records were delivered again"


@pytest.mark.parametrize("hard", [False, True], ids=["clean-restart", "kill-9"])
def test_a_restart_mid_stream_loses_and_repeats_nothing_accepted(
    tmp_path: Path, hard: bool
) -> None:
    with running_broker(tmp_path / "data", *SHARE_SETTINGS) as broker:
        bootstrap = broker.bootstrap
        create_topic(bootstrap, "stream")
        set_group_configs(bootstrap, "durable", share_auto_offset_reset="earliest")
        values = [f"s{n}".encode() for n in range(200)]
        produce(bootstrap, "stream", values)

        consumer = share_consumer(
            bootstrap, "durable", share_acknowledgement_mode="explicit", max_poll_records=20
        )
        consumer.subscribe(["stream"])
        before: list[bytes] = []

        def accept(message: Message) -> None:
            consumer.acknowledge(message)
            before.append(message.value())

        poll_until(consumer, lambda: len(before) >= 60, accept)
        assert consumer.commit_sync(30) is not None  # the broker answered: accepted is durable
        broker.restart(hard=hard)
        # The old consumer's connection died with the broker; start a fresh worker.
        consumer.close()

        after: list[bytes] = []
        worker = share_consumer(bootstrap, "durable", share_acknowledgement_mode="explicit")
        worker.subscribe(["stream"])

        def accept_after(message: Message) -> None:
            worker.acknowledge(message)
            after.append(message.value())

        poll_until(worker, lambda: len(before) + len(after) >= len(values), accept_after, 60)
        worker.commit_sync()
        worker.close()
        assert not set(before) & set(after), "an accepted record was delivered again"
        assert sorted(before + after) == sorted(values), "a record was lost"


def test_delayed_records_wait_for_share_groups_but_not_for_consumer_groups(
    share_broker: BrokerProcess,
) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "later")
    set_group_configs(bootstrap, "schedulers", share_auto_offset_reset="earliest")
    due = int(time.time() * 1000) + 2500
    produce(bootstrap, "later", [b"now"])
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        "later", value=b"delayed", headers=[("millpond.deliver.after.ms", b"%d" % due)]
    )
    assert producer.flush(10) == 0

    # A consumer group reads the log as it is: both records at once.
    assert [m.value() for m in read_topic(bootstrap, "later", 2)] == [b"now", b"delayed"]

    consumer = share_consumer(bootstrap, "schedulers")
    consumer.subscribe(["later"])
    arrivals: dict[bytes, float] = {}
    poll_until(
        consumer,
        lambda: len(arrivals) == 2,
        lambda m: arrivals.setdefault(m.value(), time.time() * 1000),
    )
    consumer.close()
    assert arrivals[b"now"] < due
    assert arrivals[b"delayed"] >= due


def test_a_topic_delay_holds_every_record_back(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "cooling", **{"millpond.delivery.delay.ms": "1500"})
    set_group_configs(bootstrap, "coolers", share_auto_offset_reset="earliest")
    consumer = share_consumer(bootstrap, "coolers")
    consumer.subscribe(["cooling"])
    produced_at = time.time() * 1000
    produce(bootstrap, "cooling", [b"a", b"b"])
    arrivals: list[float] = []
    poll_until(consumer, lambda: len(arrivals) == 2, lambda m: arrivals.append(time.time() * 1000))
    consumer.close()
    assert min(arrivals) - produced_at >= 1500 - 50  # record timestamps are taken client-side


def test_redrive_puts_dead_letters_back_for_the_workers(share_broker: BrokerProcess) -> None:
    bootstrap = share_broker.bootstrap
    create_topic(bootstrap, "payments")
    set_group_configs(bootstrap, "payers", share_auto_offset_reset="earliest")
    produce(bootstrap, "payments", [b"flaky-1", b"ok", b"flaky-2"], headers=[("id", b"7")])

    # First pass: the flaky records fail every time and end in dlq.payers.
    consumer = share_consumer(bootstrap, "payers", share_acknowledgement_mode="explicit")
    consumer.subscribe(["payments"])
    accepted: list[bytes] = []

    def fail_flaky(message: Message) -> None:
        if message.value().startswith(b"flaky"):
            consumer.acknowledge(message, AcknowledgeType.REJECT)
        else:
            consumer.acknowledge(message)
            accepted.append(message.value())

    poll_until(consumer, lambda: accepted == [b"ok"], fail_flaky)
    consumer.commit_sync()
    assert len(read_topic(bootstrap, "dlq.payers", 2)) == 2

    # The bug is fixed: redrive, and the same worker now accepts them.
    result = run_cli("dlq", "redrive", "payers", bootstrap=bootstrap)
    assert result.returncode == 0, result.stderr
    again = run_cli("dlq", "redrive", "payers", bootstrap=bootstrap)
    assert again.returncode == 0, again.stderr  # a rerun redrives nothing more

    def accept_all(message: Message) -> None:
        consumer.acknowledge(message)
        accepted.append(message.value())
        headers = dict(message.headers() or [])
        assert headers.get("id") == b"7"
        assert not any(name.startswith("_dlq.") for name in headers)

    poll_until(consumer, lambda: len(accepted) == 3, accept_all)
    consumer.commit_sync()
    extra: list[Message] = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        extra.extend(records(consumer.poll(0.3)))
    consumer.close()
    assert sorted(accepted) == [b"flaky-1", b"flaky-2", b"ok"]
    assert extra == [], "a dead letter was redriven twice"
