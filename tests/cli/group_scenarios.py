"""Consumer-group scenarios for `millpond groups …`, run against any broker with groups.

Each check_* function takes a bootstrap address; test_groups_tansu.py and
test_groups_millpond.py run them against tansu and against Millpond's own coordinator.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer
from confluent_kafka import Producer
from confluent_kafka import TopicPartition

from tests.cli.support import assert_one_line_error
from tests.cli.support import run_cli
from tests.cli.support import table_rows


def produce(
    bootstrap: str,
    topic: str,
    partition: int,
    count: int,
    *,
    start_ms: int | None = None,
    gap_s: float = 0.0,
) -> list[int]:
    """One record per request (so each is its own batch); returns their timestamps in ms."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    stamps: list[int] = []
    for i in range(count):
        extra = {} if start_ms is None else {"timestamp": start_ms + i * 1000}
        producer.produce(
            topic,
            value=f"{topic}-{partition}-{i}".encode(),
            partition=partition,
            on_delivery=lambda _e, m: stamps.append(m.timestamp()[1]),
            **extra,
        )
        assert producer.flush(10) == 0
        time.sleep(gap_s)
    assert len(stamps) == count
    return stamps


class Member:
    """A subscribed consumer that has joined its group, and what it read while joining."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.read: list[tuple[int, int]] = []

    def poll(self, timeout: float) -> None:
        message = self.consumer.poll(timeout)
        if message is not None and message.error() is None:
            self.read.append((message.partition(), message.offset()))


@contextmanager
def member(
    bootstrap: str, group: str, topic: str, client_id: str = "test-member"
) -> Iterator[Member]:
    """A consumer of `group` that has joined (taken an assignment); closed on exit."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "session.timeout.ms": 6000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    joined = Member(consumer)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            assert time.monotonic() < deadline, "consumer never joined"
            joined.poll(0.2)
        yield joined
    finally:
        consumer.close()


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Join `group` once, commit these offsets and leave, so the group is Empty afterwards."""
    with member(bootstrap, group, topic) as joined:
        joined.consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )


def read_all(bootstrap: str, group: str, topic: str, count: int) -> list[tuple[int, int]]:
    """(partition, offset) of the next `count` records `group` reads from its committed offsets."""
    with member(bootstrap, group, topic) as joined:
        deadline = time.monotonic() + 30
        while len(joined.read) < count and time.monotonic() < deadline:
            joined.poll(0.5)
    return joined.read


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    result = run_cli(
        "topics", "create", topic, "--partitions", str(partitions), bootstrap=bootstrap
    )
    assert result.returncode == 0, result.stderr


def check_list_and_describe_with_lag(bootstrap: str) -> None:
    create_topic(bootstrap, "orders", 3)
    now_ms = int(time.time() * 1000)
    produce(bootstrap, "orders", 0, 10, start_ms=now_ms - 2 * 3600 * 1000)
    produce(bootstrap, "orders", 1, 4)
    produce(bootstrap, "orders", 2, 3, start_ms=now_ms - 3 * 3600 * 1000)
    commit(bootstrap, "billing", "orders", {0: 6, 1: 4, 2: 1})

    listed = run_cli("groups", "list", bootstrap=bootstrap)
    assert listed.returncode == 0, listed.stderr
    assert ["billing", "Empty"] in [row[:2] for row in table_rows(listed.stdout)]

    described = run_cli("groups", "describe", "billing", bootstrap=bootstrap)
    assert described.returncode == 0, described.stderr
    assert "state: Empty" in described.stdout
    rows = {(row[0], row[1]): row[2:] for row in table_rows(described.stdout) if len(row) == 7}
    committed, log_end, lag, lag_time, _client = rows["orders", "0"]
    assert (committed, log_end, lag) == ("6", "10", "4")
    # The record at offset 6 was stamped two hours ago plus six seconds.
    assert re.fullmatch(r"1h59m|2h00m", lag_time), lag_time
    assert rows["orders", "1"][:4] == ["4", "4", "0", "-"]
    committed, log_end, lag, lag_time, _client = rows["orders", "2"]
    assert (committed, log_end, lag) == ("1", "3", "2")
    assert re.fullmatch(r"2h59m|3h00m", lag_time), lag_time

    unknown = run_cli("groups", "describe", "nobody", bootstrap=bootstrap)
    assert_one_line_error(unknown, 1, "unknown group 'nobody'")


def check_reset_dry_run_shows_the_plan_and_changes_nothing(bootstrap: str) -> None:
    create_topic(bootstrap, "plan", 2)
    produce(bootstrap, "plan", 0, 5)
    produce(bootstrap, "plan", 1, 3)
    commit(bootstrap, "g", "plan", {0: 4, 1: 2})

    for extra in ([], ["--dry-run"]):
        result = run_cli(
            "groups",
            "reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--shift-by",
            "-3",
            *extra,
            bootstrap=bootstrap,
        )
        assert result.returncode == 0, result.stderr
        assert table_rows(result.stdout) == [["plan", "0", "4", "1"], ["plan", "1", "2", "0"]]
        assert "dry run" in result.stdout

    one = run_cli(
        "groups",
        "reset-offsets",
        "--group",
        "g",
        "--topic",
        "plan:1",
        "--to-offset",
        "99",
        bootstrap=bootstrap,
    )
    assert table_rows(one.stdout) == [["plan", "1", "2", "3"]]  # clamped to the log end

    described = run_cli("groups", "describe", "g", bootstrap=bootstrap)
    rows = [row[:3] for row in table_rows(described.stdout) if len(row) == 7]
    assert rows == [["plan", "0", "4"], ["plan", "1", "2"]]


def check_execute_to_earliest_replays_from_zero(bootstrap: str) -> None:
    create_topic(bootstrap, "replay", 1)
    produce(bootstrap, "replay", 0, 6)
    assert len(read_all(bootstrap, "r", "replay", 6)) == 6
    commit(bootstrap, "r", "replay", {0: 6})

    result = run_cli(
        "groups",
        "reset-offsets",
        "--group",
        "r",
        "--topic",
        "replay",
        "--to-earliest",
        "--execute",
        bootstrap=bootstrap,
    )
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout) == [["replay", "0", "6", "0"]]
    assert "committed new offsets for 1 partition(s)" in result.stdout

    assert read_all(bootstrap, "r", "replay", 6) == [(0, offset) for offset in range(6)]


def check_to_datetime_lands_on_first_offset_at_or_after(bootstrap: str) -> None:
    create_topic(bootstrap, "timed", 1)
    stamps = produce(bootstrap, "timed", 0, 5, gap_s=0.3)
    commit(bootstrap, "t", "timed", {0: 5})
    between = (stamps[2] + stamps[3]) // 2  # after record 2, before record 3
    moment = datetime.datetime.fromtimestamp(between / 1000, tz=datetime.UTC).isoformat()
    result = run_cli(
        "groups",
        "reset-offsets",
        "--group",
        "t",
        "--topic",
        "timed",
        "--to-datetime",
        moment,
        "--execute",
        bootstrap=bootstrap,
    )
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout) == [["timed", "0", "5", "3"]]

    exact = datetime.datetime.fromtimestamp(stamps[1] / 1000, tz=datetime.UTC).isoformat()
    result = run_cli(
        "groups",
        "reset-offsets",
        "--group",
        "t",
        "--topic",
        "timed",
        "--to-datetime",
        exact,
        bootstrap=bootstrap,
    )
    assert table_rows(result.stdout) == [["timed", "0", "3", "1"]]

    recent = run_cli(
        "groups",
        "reset-offsets",
        "--group",
        "t",
        "--topic",
        "timed",
        "--by-duration",
        "P1D",
        bootstrap=bootstrap,
    )
    assert table_rows(recent.stdout) == [["timed", "0", "3", "0"]]


def check_reset_is_refused_while_a_member_is_active(bootstrap: str) -> None:
    create_topic(bootstrap, "busy", 1)
    produce(bootstrap, "busy", 0, 3)
    with member(bootstrap, "live", "busy"):
        for mode in ([], ["--execute"]):
            result = run_cli(
                "groups",
                "reset-offsets",
                "--group",
                "live",
                "--topic",
                "busy",
                "--to-earliest",
                *mode,
                bootstrap=bootstrap,
            )
            assert_one_line_error(result, 1, "'live'", "inactive", "Stable")
        described = run_cli("groups", "describe", "live", bootstrap=bootstrap)
        assert "state: Stable" in described.stdout
    # Once the member has left, the same reset goes through.
    deadline = time.monotonic() + 20
    while True:
        result = run_cli(
            "groups",
            "reset-offsets",
            "--group",
            "live",
            "--topic",
            "busy",
            "--to-earliest",
            "--execute",
            bootstrap=bootstrap,
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr


def check_describe_shows_members(bootstrap: str) -> None:
    create_topic(bootstrap, "watched", 2)
    produce(bootstrap, "watched", 0, 3)
    with member(bootstrap, "viewers", "watched", client_id="viewer-1"):
        described = run_cli("groups", "describe", "viewers", bootstrap=bootstrap)
    assert described.returncode == 0, described.stderr
    assert "state: Stable" in described.stdout
    assert "members: 1" in described.stdout
    members = [row for row in table_rows(described.stdout) if len(row) == 4]
    assert len(members) == 1
    _member_id, client_id, host, assigned = members[0]
    assert (client_id, assigned) == ("viewer-1", "watched:0, watched:1")
    assert "127.0.0.1" in host
    partitions = [row for row in table_rows(described.stdout) if len(row) == 7]
    # Nothing committed yet: no lag to report, but the owner is shown.
    assert partitions[0] == ["watched", "0", "-", "3", "-", "-", "viewer-1"]


def check_consume_with_group_commits(bootstrap: str) -> None:
    create_topic(bootstrap, "jobs", 1)
    produce(bootstrap, "jobs", 0, 5)
    consume = [
        "consume",
        "jobs",
        "--group",
        "workers",
        "--from-beginning",
        "--consumer-property",
        "session.timeout.ms=6000",
    ]
    first = run_cli(*consume, "--max-messages", "3", bootstrap=bootstrap)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["jobs-0-0", "jobs-0-1", "jobs-0-2"]

    described = run_cli("groups", "describe", "workers", bootstrap=bootstrap)
    rows = [row[:5] for row in table_rows(described.stdout) if len(row) == 7]
    assert rows == [["jobs", "0", "3", "5", "2"]]

    rest = run_cli(*consume, "--max-messages", "2", bootstrap=bootstrap)
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout.splitlines() == ["jobs-0-3", "jobs-0-4"]
