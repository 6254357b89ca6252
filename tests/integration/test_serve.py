"""`millpond serve` as a user runs it: start-up line, errors, clean stop, retention."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from tests.integration.test_wire import create_topic
from tests.integration.test_wire import fetch
from tests.integration.test_wire import produce
from tests.support.batches import build_batch
from tests.support.server import BrokerProcess
from tests.support.server import running_broker
from tests.support.wire import WireClient


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "millpond", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["serve", "--no-such-flag"], "--no-such-flag"),
        (["serve", "--set", "no.such.key=1"], "no.such.key"),
        (["serve", "--set", "num.partitions=zero"], "num.partitions"),
        (["serve", "--set", "log.cleanup.policy=shred"], "log.cleanup.policy"),
        (["serve", "--kafka-listen", "localhost"], "kafka.listen"),
        (["serve", "--set", "novalue"], "novalue"),
    ],
)
def test_bad_flags_and_configs_are_one_line_errors(args: list[str], named: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_config_file_is_read_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "broker.properties"
    config.write_text("# comment\nnum.partitions = 3\nbogus.key=1\n")
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "bogus.key" in result.stderr


def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("serve", "--data-dir", str(blocker / "data"), "--kafka-listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "cannot start" in result.stderr


def test_a_second_broker_on_the_same_data_dir_is_refused(broker: BrokerProcess) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "millpond", "serve"),
            *("--data-dir", str(broker.data_dir)),
            *("--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "in use by another millpond process" in result.stderr
    with WireClient(broker.bootstrap) as client:  # the first one carries on
        create_topic(client, "still-serving")


def test_sigterm_stops_cleanly_and_restart_is_instant(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "t", 2)
        produce(client, "t", bytes(build_batch([b"a"])), acks=1)
    assert broker.stop() == 0
    assert (broker.data_dir / ".millpond_cleanshutdown").exists()
    assert "stopped cleanly" in broker.log()
    broker.start()
    ready = [line for line in broker.log().splitlines() if "ready on" in line][-1]
    # 2 + __consumer_offsets + __share_group_state + _schemas
    assert "5 partition(s) opened after a clean stop" in ready
    assert not (broker.data_dir / ".millpond_cleanshutdown").exists()
    with WireClient(broker.bootstrap) as client:
        assert fetch(client, "t", 0).records


def test_retention_deletes_old_segments(tmp_path: Path) -> None:
    settings = ("log.retention.check.interval.ms=100",)
    with (
        running_broker(tmp_path / "data", *settings) as broker,
        WireClient(broker.bootstrap) as client,
    ):
        create_topic(client, "short", retention_ms="200", segment_bytes="100")
        old = int(time.time() * 1000) - 60_000
        for _ in range(5):
            produce(client, "short", bytes(build_batch([b"x" * 50], timestamps=[old])))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if fetch(client, "short", 0).error_code == ErrorCode.offset_out_of_range:
                break
            time.sleep(0.05)
        assert fetch(client, "short", 0).error_code == ErrorCode.offset_out_of_range


def test_running_out_of_file_descriptors_refuses_the_topic_not_the_broker(
    tmp_path: Path,
) -> None:
    from kio.schema.create_topics.v7 import request as create_v7

    with running_broker(tmp_path / "data", fd_limit=256) as broker:
        with WireClient(broker.bootstrap) as client:
            request = create_v7.CreateTopicsRequest(
                topics=(
                    create_v7.CreatableTopic(
                        name="huge",
                        num_partitions=500,
                        replication_factor=1,
                        assignments=(),
                        configs=(),
                    ),
                ),
                timeout=datetime.timedelta(seconds=30),
                validate_only=False,
            )
            result = client.call(request).topics[0]
            assert result.error_code == ErrorCode.kafka_storage_error
            assert "huge" in result.error_message
            create_topic(client, "small", 2)
            produce(client, "small", bytes(build_batch([b"still here"])))
            assert fetch(client, "small", 0).records
        assert not list((broker.data_dir).glob("huge-*"))
        broker.restart()
        # with __consumer_offsets, __share_group_state and _schemas
        assert "5 partition(s)" in broker.log().splitlines()[-1]
