"""The real `millpond` command against a real Millpond broker: topics, produce, consume, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.support import assert_one_line_error
from tests.cli.support import run_cli
from tests.cli.support import table_rows
from tests.support.server import BrokerProcess

pytestmark = pytest.mark.compat


def closed_port() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_topics_create_list_describe_delete(broker: BrokerProcess) -> None:
    created = run_cli(
        "topics",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=60000",
        bootstrap=broker.bootstrap,
    )
    assert created.returncode == 0, created.stderr
    assert "created topic orders with 3 partition(s)" in created.stdout

    listed = run_cli("topics", "list", bootstrap=broker.bootstrap)
    assert listed.returncode == 0, listed.stderr
    assert ["orders", "3", "no"] in table_rows(listed.stdout)

    printf = run_cli(
        "produce", "orders", "--partition", "1", bootstrap=broker.bootstrap, stdin=b"a\nb\n"
    )
    assert printf.returncode == 0, printf.stderr

    described = run_cli("topics", "describe", "orders", bootstrap=broker.bootstrap)
    assert described.returncode == 0, described.stderr
    rows = table_rows(described.stdout)
    partitions = [row for row in rows if len(row) == 6]
    assert [row[0] for row in partitions] == ["0", "1", "2"]
    assert partitions[1][4:] == ["0", "2"]  # log start, log end
    assert partitions[0][4:] == ["0", "0"]
    assert all(row[1] == "0" and row[2] == "0" for row in partitions)  # leader, replicas
    assert ["retention.ms", "60000", "DYNAMIC_TOPIC_CONFIG"] in rows
    assert not any(row[0] == "segment.bytes" for row in rows)  # defaults are not shown

    duplicate = run_cli("topics", "create", "orders", bootstrap=broker.bootstrap)
    assert_one_line_error(duplicate, 1, "orders", "already exists")

    deleted = run_cli("topics", "delete", "orders", bootstrap=broker.bootstrap)
    assert deleted.returncode == 0, deleted.stderr
    listed = run_cli("topics", "list", bootstrap=broker.bootstrap)
    assert "orders" not in listed.stdout


def test_produce_then_consume_round_trip(broker: BrokerProcess) -> None:
    assert (
        run_cli(
            "topics", "create", "events", "--partitions", "2", bootstrap=broker.bootstrap
        ).returncode
        == 0
    )
    lines = b"user1:signed up\nuser2:signed up\nuser1:paid\n"
    produced = run_cli(
        "produce", "events", "--key-separator", ":", bootstrap=broker.bootstrap, stdin=lines
    )
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout == "delivered 3 of 3 message(s) to events\n"

    consumed = run_cli(
        "consume",
        "events",
        "--from-beginning",
        "--max-messages",
        "3",
        "--format",
        "%k=%v",
        bootstrap=broker.bootstrap,
    )
    assert consumed.returncode == 0, consumed.stderr
    out = consumed.stdout.splitlines()
    assert sorted(out) == ["user1=paid", "user1=signed up", "user2=signed up"]
    # Same key, same partition, so per-key order holds.
    assert out.index("user1=signed up") < out.index("user1=paid")
    assert "processed a total of 3 message(s)" in consumed.stderr

    values = run_cli(
        "consume", "events", "--from-beginning", "--timeout-ms", "1500", bootstrap=broker.bootstrap
    )
    assert values.returncode == 0, values.stderr
    assert sorted(values.stdout.splitlines()) == ["paid", "signed up", "signed up"]

    # Without --from-beginning a reader starts at the end and sees only what comes later.
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "millpond",
            "consume",
            "events",
            "--max-messages",
            "1",
            "--bootstrap-server",
            broker.bootstrap,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)  # let it take its assignment at the log end
        assert (
            run_cli("produce", "events", bootstrap=broker.bootstrap, stdin=b"late\n").returncode
            == 0
        )
        stdout, stderr = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0, stderr
    assert stdout == b"late\n"


def test_consume_one_partition(broker: BrokerProcess) -> None:
    assert (
        run_cli("topics", "create", "p", "--partitions", "3", bootstrap=broker.bootstrap).returncode
        == 0
    )
    for partition in range(3):
        result = run_cli(
            "produce",
            "p",
            "--partition",
            str(partition),
            bootstrap=broker.bootstrap,
            stdin=f"in-{partition}\n".encode(),
        )
        assert result.returncode == 0, result.stderr
    consumed = run_cli(
        "consume",
        "p",
        "--partition",
        "2",
        "--from-beginning",
        "--format",
        "%p %o %v",
        "--timeout-ms",
        "1500",
        bootstrap=broker.bootstrap,
    )
    assert consumed.stdout.splitlines() == ["2 0 in-2"]


def test_produce_a_file_from_stdin(broker: BrokerProcess, tmp_path: Path) -> None:
    assert (
        run_cli(
            "topics", "create", "bulk", "--partitions", "4", bootstrap=broker.bootstrap
        ).returncode
        == 0
    )
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"k{i % 17}\tvalue {i}\n" for i in range(5000)))
    with source.open("rb") as stdin:
        produced = subprocess.run(
            [
                sys.executable,
                "-m",
                "millpond",
                "produce",
                "bulk",
                "--key-separator",
                "\t",
                "--bootstrap-server",
                broker.bootstrap,
            ],
            stdin=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert produced.returncode == 0, produced.stderr
    assert b"delivered 5000 of 5000 message(s)" in produced.stdout
    consumed = run_cli(
        "consume", "bulk", "--from-beginning", "--max-messages", "5000", bootstrap=broker.bootstrap
    )
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.splitlines()) == sorted(f"value {i}" for i in range(5000))


def test_bootstrap_from_environment(broker: BrokerProcess) -> None:
    env = dict(os.environ, MILLPOND_BOOTSTRAP_SERVER=broker.bootstrap)
    result = subprocess.run(
        [sys.executable, "-m", "millpond", "topics", "create", "from-env"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "from-env" in run_cli("topics", "list", bootstrap=broker.bootstrap).stdout


def test_unknown_topic_errors(broker: BrokerProcess) -> None:
    for args in (
        ["topics", "describe", "nope"],
        ["topics", "delete", "nope"],
        ["consume", "nope", "--max-messages", "1"],
        ["produce", "nope"],
    ):
        result = run_cli(*args, bootstrap=broker.bootstrap, stdin=b"x\n")
        assert_one_line_error(result, 1, "unknown topic 'nope'")
    # Looking for a topic never creates it, even with auto.create.topics.enable.
    assert "nope" not in run_cli("topics", "list", bootstrap=broker.bootstrap).stdout


def test_bad_input_errors(broker: BrokerProcess) -> None:
    bad_config = run_cli(
        "topics", "create", "c", "--config", "retention.ms", bootstrap=broker.bootstrap
    )
    assert_one_line_error(bad_config, 2, "--config", "retention.ms")
    unknown_config = run_cli(
        "topics", "create", "c", "--config", "colour=blue", bootstrap=broker.bootstrap
    )
    assert_one_line_error(unknown_config, 1, "colour")
    assert run_cli("topics", "create", "c", bootstrap=broker.bootstrap).returncode == 0
    no_partition = run_cli("consume", "c", "--partition", "5", bootstrap=broker.bootstrap)
    assert_one_line_error(no_partition, 1, "no partition 5")
    no_separator = run_cli(
        "produce",
        "c",
        "--key-separator",
        ":",
        bootstrap=broker.bootstrap,
        stdin=b"k:v\nnot keyed\n",
    )
    assert_one_line_error(no_separator, 1, "line 2", "separator")
    assert "delivered 1 of 1" in no_separator.stdout  # what came before the bad line went out


@pytest.mark.parametrize(
    "args",
    [
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--by-duration", "PT1X"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-datetime", "noon"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics"],
        ["groups", "reset-offsets", "--group", "g", "--to-earliest"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-earliest", "--to-latest"],
        ["consume", "t", "--format", "%q"],
        ["topics", "list", "--bootstrap-server", "no-port"],
    ],
)
def test_usage_errors_exit_2_without_connecting(args: list[str]) -> None:
    # The default bootstrap is never dialled: usage is checked first.
    result = run_cli(*args)
    assert_one_line_error(result, 2)


@pytest.mark.parametrize(
    "args",
    [
        ["topics", "list"],
        ["topics", "describe", "t"],
        ["produce", "t"],
        ["consume", "t"],
        ["groups", "list"],
        ["groups", "describe", "g"],
        ["groups", "reset-offsets", "--group", "g", "--all-topics", "--to-earliest"],
    ],
)
def test_unreachable_broker(args: list[str]) -> None:
    address = closed_port()
    started = time.monotonic()
    result = run_cli(*args, bootstrap=address, stdin=b"x\n")
    assert_one_line_error(result, 1, "cannot reach", address)
    assert time.monotonic() - started < 15
