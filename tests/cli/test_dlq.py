"""`millpond dlq …` against a real Millpond broker, with dead letters written by hand.

The pure helpers (rendering, targets, what a chunk may commit) are tested first, without
sockets; the rest runs the real command in a subprocess and checks what it wrote with real
confluent-kafka clients.
"""

from __future__ import annotations

import re
import socket
import time

import pytest
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import Message
from confluent_kafka import Producer
from confluent_kafka import TopicPartition

from millpond.cli.dead_letters import DeadLetter
from millpond.cli.dead_letters import PartitionProgress
from millpond.cli.dead_letters import Target
from millpond.cli.dead_letters import delivered_prefix
from millpond.cli.dead_letters import format_timestamp
from millpond.cli.dead_letters import redrive_target
from millpond.cli.dead_letters import render_bytes
from millpond.cli.dead_letters import shorten
from millpond.cli.errors import CliError
from tests.cli.support import assert_one_line_error
from tests.cli.support import run_cli
from tests.cli.support import table_rows
from tests.support.server import BrokerProcess

# 2026-01-01T00:00:00Z, the time the hand-written dead letters say they were dead-lettered.
DEAD_LETTERED_MS = 1_767_225_600_000


def letter(
    offset: int,
    *,
    partition: int = 0,
    topic: str | None = "orders",
    original_partition: str = "1",
    extra: tuple[tuple[str, bytes | None], ...] = (),
) -> DeadLetter:
    headers: list[tuple[str, bytes | None]] = [("trace", b"t-1"), *extra]
    if topic is not None:
        headers.append(("_dlq.errors.original.topic", topic.encode()))
    headers.append(("_dlq.errors.original.partition", original_partition.encode()))
    return DeadLetter(partition, offset, DEAD_LETTERED_MS, b"k", b"v", tuple(headers))


# --- pure helpers ---------------------------------------------------------------------------


def test_render_bytes() -> None:
    assert render_bytes(None) == "(null)"
    assert render_bytes(b"") == "(empty)"
    assert render_bytes('{"a": "é"}\n\t1'.encode()) == '{"a": "é"}\n\t1'
    assert render_bytes(b"\xff\x00a") == "hex:ff0061"
    assert render_bytes(b"a\x00b") == "hex:610062"  # valid UTF-8, but not text


def test_shorten_and_format_timestamp() -> None:
    assert shorten("short") == "short"
    assert shorten("a" * 30, 10) == "a" * 9 + "…"
    assert shorten("two\nlines") == "two\\nlines"
    assert format_timestamp(DEAD_LETTERED_MS + 250) == "2026-01-01T00:00:00.250Z"
    assert format_timestamp(None) == "-"
    assert format_timestamp(-1) == "-"


def test_dead_letter_headers() -> None:
    dead = letter(3, extra=(("_dlq.errors.delivery.count", b"5"), ("_dlq.errors.x", None)))
    assert dead.original_topic == "orders"
    assert dead.original_partition == 1
    assert dead.delivery_count == 5
    assert dead.original_offset is None
    assert dead.original_headers == (("trace", b"t-1"),)
    assert letter(0, original_partition="one").original_partition is None


def test_redrive_target() -> None:
    counts = {"orders": 3, "other": 1}
    assert redrive_target(letter(0), None, counts) == Target("orders", 1)
    # The original partition is gone (the topic was recreated smaller): the key picks.
    assert redrive_target(letter(0, original_partition="7"), None, counts) == Target("orders", None)
    assert redrive_target(letter(0, original_partition="x"), None, counts) == Target("orders", None)
    assert redrive_target(letter(0), "other", counts) == Target("other", None)
    with pytest.raises(CliError, match="original topic 'gone' of dead letter 0@4 does not exist"):
        redrive_target(letter(4, topic="gone"), None, counts)
    with pytest.raises(CliError, match=re.escape("no _dlq.errors.original.topic header")):
        redrive_target(letter(4, topic=None), None, counts)
    assert redrive_target(letter(4, topic=None), "other", counts) == Target("other", None)


def test_delivered_prefix() -> None:
    chunk = [letter(5), letter(6), letter(7), letter(2, partition=1), letter(3, partition=1)]
    everything = {(0, 5), (0, 6), (0, 7), (1, 2), (1, 3)}
    assert delivered_prefix(chunk, everything) == ({0: 8, 1: 4}, None)
    # 0@6 failed: 0@7 was delivered but lies past the gap, so partition 0 commits 6 only.
    commits, failed = delivered_prefix(chunk, everything - {(0, 6)})
    assert commits == {0: 6, 1: 4}
    assert failed == letter(6)
    commits, failed = delivered_prefix(chunk, {(0, 5), (0, 6), (0, 7)})
    assert commits == {0: 8}
    assert failed == letter(2, partition=1)
    assert delivered_prefix([], set()) == ({}, None)


def test_partition_progress() -> None:
    fresh = PartitionProgress(0, log_start_offset=2, log_end_offset=10, committed_offset=None)
    assert (fresh.next_offset, fresh.waiting, fresh.redriven) == (2, 8, 0)
    assert not fresh.is_redriven(3)
    half = PartitionProgress(0, 2, 10, committed_offset=6)
    assert (half.next_offset, half.waiting, half.redriven) == (6, 4, 4)
    assert half.is_redriven(5)
    assert not half.is_redriven(6)
    past_end = PartitionProgress(0, 0, 10, committed_offset=12)
    assert (past_end.next_offset, past_end.waiting) == (10, 0)


# --- against a real broker ------------------------------------------------------------------


def create_topic(broker: BrokerProcess, topic: str, partitions: int = 1) -> None:
    result = run_cli(
        "topics", "create", topic, "--partitions", str(partitions), bootstrap=broker.bootstrap
    )
    assert result.returncode == 0, result.stderr


def dead_letter_headers(
    topic: str, partition: int, offset: int, count: int = 5, disposition: str | None = None
) -> list[tuple[str, bytes]]:
    return [
        (
            "_dlq.errors.disposition",
            (disposition or "MAX_DELIVERY_ATTEMPTS_REACHED").encode(),
        ),
        ("_dlq.errors.original.topic", topic.encode()),
        ("_dlq.errors.original.partition", str(partition).encode()),
        ("_dlq.errors.original.offset", str(offset).encode()),
        ("_dlq.errors.group.id", b"billing"),
        ("_dlq.errors.delivery.count", str(count).encode()),
    ]


def write_dead_letters(
    broker: BrokerProcess,
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    topic: str = "dlq.billing",
) -> None:
    """(key, value, headers) records, in this order, to partition 0 of the dead-letter topic."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    failures: list[KafkaError] = []
    for key, value, headers in records:
        producer.produce(
            topic,
            key=key,
            value=value,
            partition=0,
            headers=headers,
            timestamp=DEAD_LETTERED_MS,
            on_delivery=lambda error, _message: failures.extend([error] if error else []),
        )
    assert producer.flush(10) == 0
    assert failures == []


def order_letters(count: int, first: int = 0) -> list[tuple[bytes | None, bytes | None, list]]:
    """Dead letters of `orders`, each claiming partition i % 3 and offset 100 + i."""
    return [
        (
            f"key-{i}".encode(),
            f"value-{i}".encode(),
            [("trace", f"t-{i}".encode()), *dead_letter_headers("orders", i % 3, 100 + i)],
        )
        for i in range(first, first + count)
    ]


def read_topic(broker: BrokerProcess, topic: str, partitions: int = 1) -> list[Message]:
    """Every record of `topic` now, partition by partition, by an assign-only consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "test-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Message] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 15
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic} never reached its end"
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(int(message.partition() or 0))
                continue
            at_end.discard(int(message.partition() or 0))
            messages.append(message)
    finally:
        consumer.close()
    return sorted(messages, key=lambda m: (m.partition(), m.offset()))


def redrive_progress(broker: BrokerProcess, dlq_topic: str = "dlq.billing") -> int | None:
    """The offset the redrive group committed on partition 0 of the DLQ (None: nothing)."""
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": f"millpond-redrive.{dlq_topic}"}
    )
    try:
        [committed] = consumer.committed([TopicPartition(dlq_topic, 0)], timeout=10)
    finally:
        consumer.close()
    return None if committed.offset < 0 else committed.offset


def dlq(broker: BrokerProcess, *args: str) -> tuple[int, str, str]:
    result = run_cli("dlq", *args, bootstrap=broker.bootstrap)
    return result.returncode, result.stdout, result.stderr


pytestmark = pytest.mark.compat


def test_missing_dead_letter_topic(broker: BrokerProcess) -> None:
    missing = "no dead letters for group billing (topic dlq.billing does not exist)\n"
    for command in ("list", "show", "redrive"):
        assert dlq(broker, command, "billing") == (0, missing, "")
    custom = dlq(broker, "list", "billing", "--topic", "billing-dead")
    assert custom[:2] == (
        0,
        "no dead letters for group billing (topic billing-dead does not exist)\n",
    )
    result = run_cli("dlq", "show", "billing", "--offset", "0", bootstrap=broker.bootstrap)
    assert_one_line_error(result, 1, "dlq.billing does not exist")
    # Looking never creates the topic.
    assert "dlq.billing" not in run_cli("topics", "list", bootstrap=broker.bootstrap).stdout


def test_list_and_show(broker: BrokerProcess) -> None:
    create_topic(broker, "dlq.billing")
    write_dead_letters(
        broker,
        [
            (
                b"user-1",
                b'{"total": 12}',
                [("trace", b"abc"), *dead_letter_headers("orders", 2, 41)],
            ),
            (
                b"a-very-long-key-that-does-not-fit-a-column",
                b"\xff\x00binary",
                dead_letter_headers("payments", 0, 7, count=1, disposition="CLIENT_REJECTED"),
            ),
            (None, None, dead_letter_headers("orders", 0, 3)),
        ],
    )
    code, out, err = dlq(broker, "list", "billing")
    assert code == 0, err
    at, exhausted = "2026-01-01T00:00:00Z", "MAX_DELIVERY_ATTEMPTS_REACHED"
    assert table_rows(out) == [
        ["0@0", at, "orders:2@41", exhausted, "5", "user-1"],
        ["0@1", at, "payments:0@7", "CLIENT_REJECTED", "1", "a-very-long-key-that-do…"],
        ["0@2", at, "orders:0@3", exhausted, "5", "(null)"],
    ]
    assert out.splitlines()[-1] == "3 dead letter(s) waiting in dlq.billing, 0 already redriven"

    code, out, err = dlq(broker, "show", "billing")  # the oldest waiting one
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "dead letter dlq.billing:0@0 (waiting to be redriven)"
    assert "dead-lettered at  2026-01-01T00:00:00.000Z" in lines
    assert "original          orders:2@41" in lines
    assert "disposition       MAX_DELIVERY_ATTEMPTS_REACHED" in lines
    assert "delivery count    5" in lines
    assert "group             billing" in lines
    assert "headers (7):" in lines
    for header in (
        "  trace: abc",
        "  _dlq.errors.disposition: MAX_DELIVERY_ATTEMPTS_REACHED",
        "  _dlq.errors.original.topic: orders",
        "  _dlq.errors.original.partition: 2",
        "  _dlq.errors.original.offset: 41",
        "  _dlq.errors.group.id: billing",
        "  _dlq.errors.delivery.count: 5",
    ):
        assert header in lines, out
    assert lines[-2:] == ["key (6 bytes): user-1", 'value (13 bytes): {"total": 12}']

    code, out, err = dlq(broker, "show", "billing", "--offset", "1", "--partition", "0")
    assert code == 0, err
    assert "disposition       CLIENT_REJECTED" in out
    assert out.splitlines()[-1] == "value (8 bytes): hex:ff0062696e617279"
    code, out, err = dlq(broker, "show", "billing", "--offset", "2")
    assert code == 0, err
    assert out.splitlines()[-2:] == ["key (null): (null)", "value (null): (null)"]

    missing = run_cli("dlq", "show", "billing", "--offset", "9", bootstrap=broker.bootstrap)
    assert_one_line_error(missing, 1, "no dead letter at offset 9 in dlq.billing:0", "0 to 2")
    no_partition = run_cli(
        "dlq", "show", "billing", "--offset", "0", "--partition", "3", bootstrap=broker.bootstrap
    )
    assert_one_line_error(no_partition, 1, "dlq.billing has no partition 3")


def test_redrive_to_the_original_topic_once(broker: BrokerProcess) -> None:
    create_topic(broker, "orders", 3)
    create_topic(broker, "dlq.billing")
    letters = order_letters(4)
    # The last one claims a partition `orders` no longer has: its key picks one.
    letters[3] = (b"key-3", b"value-3", dead_letter_headers("orders", 9, 103))
    write_dead_letters(broker, letters)

    code, out, err = dlq(broker, "redrive", "billing")
    assert code == 0, err
    assert out == "redrove 4 dead letter(s) from dlq.billing to orders\n"
    assert redrive_progress(broker) == 4

    redriven = read_topic(broker, "orders", 3)
    assert len(redriven) == 4
    by_key = {m.key(): m for m in redriven}
    for i in range(3):
        record = by_key[f"key-{i}".encode()]
        assert record.partition() == i % 3  # the original partition is kept
        assert record.value() == f"value-{i}".encode()
        assert record.headers() == [("trace", f"t-{i}".encode())]  # _dlq.errors.* stripped
    assert by_key[b"key-3"].value() == b"value-3"
    assert by_key[b"key-3"].headers() is None

    code, out, err = dlq(broker, "list", "billing")
    assert code == 0, err
    assert table_rows(out) == []
    assert out == "0 dead letter(s) waiting in dlq.billing, 4 already redriven\n"
    code, out, err = dlq(broker, "list", "billing", "--all")
    assert code == 0, err
    assert [row[-1] for row in table_rows(out)] == ["yes"] * 4
    assert out.splitlines()[-1] == "0 dead letter(s) waiting in dlq.billing, 4 already redriven"
    assert "(already redriven)" in dlq(broker, "show", "billing", "--offset", "0")[1]
    assert dlq(broker, "show", "billing")[1] == "no dead letters waiting in dlq.billing\n"

    # A rerun finds nothing to do and writes nothing.
    code, out, err = dlq(broker, "redrive", "billing")
    assert code == 0, err
    assert out == "redrove 0 dead letter(s) from dlq.billing: none waiting\n"
    assert len(read_topic(broker, "orders", 3)) == 4

    # Only what was dead-lettered since is redriven by the next run.
    write_dead_letters(broker, order_letters(1, first=4))
    assert dlq(broker, "list", "billing")[1].splitlines()[-1] == (
        "1 dead letter(s) waiting in dlq.billing, 4 already redriven"
    )
    assert dlq(broker, "redrive", "billing")[:2] == (
        0,
        "redrove 1 dead letter(s) from dlq.billing to orders\n",
    )
    assert sorted(m.key() for m in read_topic(broker, "orders", 3)) == [
        f"key-{i}".encode() for i in range(5)
    ]


def test_dry_run_and_max(broker: BrokerProcess) -> None:
    create_topic(broker, "orders", 3)
    create_topic(broker, "dlq.billing")
    write_dead_letters(broker, order_letters(5))

    code, out, err = dlq(broker, "redrive", "billing", "--dry-run")
    assert code == 0, err
    rows = table_rows(out)
    assert [row[0] for row in rows] == ["0@0", "0@1", "0@2", "0@3", "0@4"]
    assert rows[1] == ["0@1", "orders:1@101", "MAX_DELIVERY_ATTEMPTS_REACHED", "key-1", "orders:1"]
    assert out.splitlines()[-1] == (
        "dry run: would redrive 5 dead letter(s) from dlq.billing to orders; "
        "nothing produced or committed"
    )
    assert read_topic(broker, "orders", 3) == []
    assert redrive_progress(broker) is None

    code, out, err = dlq(broker, "redrive", "billing", "--max", "2")
    assert code == 0, err
    assert out == "redrove 2 dead letter(s) from dlq.billing to orders\n"
    assert redrive_progress(broker) == 2
    assert sorted(m.key() for m in read_topic(broker, "orders", 3)) == [b"key-0", b"key-1"]

    code, out, err = dlq(broker, "redrive", "billing", "--dry-run", "--max", "2")
    assert code == 0, err
    assert [row[0] for row in table_rows(out)] == ["0@2", "0@3"]
    assert redrive_progress(broker) == 2

    code, out, err = dlq(broker, "redrive", "billing")
    assert code == 0, err
    assert out == "redrove 3 dead letter(s) from dlq.billing to orders\n"
    assert sorted(m.key() for m in read_topic(broker, "orders", 3)) == [
        f"key-{i}".encode() for i in range(5)
    ]


def test_redrive_in_several_chunks(broker: BrokerProcess) -> None:
    create_topic(broker, "orders", 3)
    create_topic(broker, "dlq.billing")
    write_dead_letters(broker, order_letters(260))
    code, out, err = dlq(broker, "redrive", "billing", "--max", "150")
    assert code == 0, err
    assert redrive_progress(broker) == 150
    code, out, err = dlq(broker, "redrive", "billing")
    assert code == 0, err
    assert out == "redrove 110 dead letter(s) from dlq.billing to orders\n"
    keys = [m.key() for m in read_topic(broker, "orders", 3)]
    assert sorted(keys) == sorted(f"key-{i}".encode() for i in range(260))  # each exactly once


def test_redrive_to_another_topic(broker: BrokerProcess) -> None:
    create_topic(broker, "replay", 2)
    create_topic(broker, "billing-dead")
    # The original topic is gone; --to-topic still redrives.
    write_dead_letters(broker, order_letters(3), topic="billing-dead")

    unknown = run_cli(
        "dlq",
        "redrive",
        "billing",
        "--topic",
        "billing-dead",
        "--to-topic",
        "nope",
        bootstrap=broker.bootstrap,
    )
    assert_one_line_error(unknown, 1, "unknown topic 'nope'")
    itself = run_cli(
        "dlq",
        "redrive",
        "billing",
        "--topic",
        "billing-dead",
        "--to-topic",
        "billing-dead",
        bootstrap=broker.bootstrap,
    )
    assert_one_line_error(itself, 2, "--to-topic")

    code, out, err = dlq(
        broker, "redrive", "billing", "--topic", "billing-dead", "--to-topic", "replay", "--dry-run"
    )
    assert code == 0, err
    assert [row[-1] for row in table_rows(out)] == ["replay (by key)"] * 3
    assert redrive_progress(broker, "billing-dead") is None

    code, out, err = dlq(
        broker, "redrive", "billing", "--topic", "billing-dead", "--to-topic", "replay"
    )
    assert code == 0, err
    assert out == "redrove 3 dead letter(s) from billing-dead to replay\n"
    assert redrive_progress(broker, "billing-dead") == 3
    replayed = read_topic(broker, "replay", 2)
    assert sorted((m.key(), m.value()) for m in replayed) == [
        (f"key-{i}".encode(), f"value-{i}".encode()) for i in range(3)
    ]
    assert all(m.headers() == [("trace", m.value().replace(b"value", b"t"))] for m in replayed)


def test_redrive_stops_at_a_missing_original_topic(broker: BrokerProcess) -> None:
    create_topic(broker, "orders", 3)
    create_topic(broker, "dlq.billing")
    letters = order_letters(3)
    letters[1] = (b"key-x", b"value-x", dead_letter_headers("deleted-topic", 0, 1))
    write_dead_letters(broker, letters)

    result = run_cli("dlq", "redrive", "billing", bootstrap=broker.bootstrap)
    assert_one_line_error(result, 1, "'deleted-topic'", "0@1", "--to-topic")
    # What came before it went out and is committed; nothing after it.
    assert redrive_progress(broker) == 1
    assert [m.key() for m in read_topic(broker, "orders", 3)] == [b"key-0"]
    assert "deleted-topic" not in run_cli("topics", "list", bootstrap=broker.bootstrap).stdout


def test_redrive_stops_at_a_failed_delivery(broker: BrokerProcess) -> None:
    result = run_cli(
        "topics",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "max.message.bytes=1000",
        bootstrap=broker.bootstrap,
    )
    assert result.returncode == 0, result.stderr
    create_topic(broker, "dlq.billing")
    letters = order_letters(3)
    # The broker refuses this one: larger than the original topic now allows.
    letters[1] = (b"key-1", b"x" * 2000, dead_letter_headers("orders", 1, 101))
    write_dead_letters(broker, letters)

    failed = run_cli("dlq", "redrive", "billing", bootstrap=broker.bootstrap)
    assert_one_line_error(
        failed, 1, "dead letter dlq.billing:0@1 was not delivered to orders:1", "redrove 1"
    )
    # Only the unbroken run before the failure counts as redriven.
    assert redrive_progress(broker) == 1
    assert b"key-0" in [m.key() for m in read_topic(broker, "orders", 3)]
    assert dlq(broker, "list", "billing")[1].splitlines()[-1] == (
        "2 dead letter(s) waiting in dlq.billing, 1 already redriven"
    )


def test_unreachable_broker() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    for command in ("list", "show", "redrive"):
        result = run_cli("dlq", command, "billing", bootstrap=address)
        assert_one_line_error(result, 1, "cannot reach", address)
