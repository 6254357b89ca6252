"""Start-up: how long a broker takes from spawn to answering, empty, after a clean stop with a
large log, and after kill -9 with a small or a larger unflushed tail.

Every time is measured from spawn (Popen) to the port accepting a TCP connection, and to the
first answer to a Metadata request for all topics. Millpond's own "ready" log line adds how
long opening the data dir took inside the process and how many partitions it recovered.

The large log (10 GB; quick: 1 GB, over 8 topics of 4 partitions) is written once per bench
process straight through the storage layer (LogManager and Log.append, as the broker would),
in a directory under /tmp that later repeats reuse and that is deleted when the process exits.
tansu keeps everything in memory, so it is only timed empty.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.scenarios import Measured
from bench.scenarios import Metric
from bench.scenarios import Say
from bench.scenarios import Scenario
from bench.scenarios.scale import Broker
from bench.scenarios.scale import kill
from bench.scenarios.scale import spawn
from bench.scenarios.scale import stop
from bench.scenarios.scale import wait_for_metadata
from bench.scenarios.scale import wait_until_listening
from millpond.clock import SystemClock
from millpond.config import BrokerConfig
from millpond.protocol.record_codec import NewRecord
from millpond.protocol.record_codec import encode_batch
from millpond.protocol.records import iter_batches
from millpond.storage.log_manager import CLEAN_SHUTDOWN_MARKER
from millpond.storage.log_manager import LogManager

GB = 1_000_000_000
MB = 1_000_000
LOG_BYTES = 10 * GB
QUICK_LOG_BYTES = 1 * GB
TOPICS = 8
PARTITIONS = 4
VALUE_SIZE = 1024
RECORDS_PER_BATCH = 64  # about 66 KB a batch
# Seconds of acks=1 produce before kill -9; 0 is the control: a crash with nothing unflushed.
TAILS_S = (0, 1, 5)
# The periodic flush (default every 1000 ms) would sync most of the tail before the kill.
NO_PERIODIC_FLUSH = ("--set", "log.flush.interval.ms=60000")
LINE_TIMEOUT_S = 10.0
READY_LINE = re.compile(
    r"(\d+) partition\(s\) (opened after a clean stop|recovered), "
    r"\d+ group record\(s\) replayed in (\d+) ms"
)

_large_logs: dict[int, Path] = {}  # log size -> data dir, for the life of the bench process


# --- the large log ------------------------------------------------------------------------------


def large_log(size: int, say: Say) -> Path:
    """A data dir holding about `size` bytes over TOPICS x PARTITIONS, cleanly shut down:
    written on first use, then reused, and removed when the process exits."""
    data_dir = _large_logs.get(size)
    if data_dir is not None and data_dir.exists():
        return data_dir
    root = Path(tempfile.mkdtemp(prefix="bench-startup-log-", dir="/tmp"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    free = shutil.disk_usage(root).free
    if free < 2 * size:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(
            f"{size / GB:.0f} GB log wanted, and twice that free, but /tmp has {free / GB:.1f} GB"
        )
    data_dir = root / "data"
    logs = LogManager(data_dir, BrokerConfig(), SystemClock())
    logs.startup()
    now_ms = int(time.time() * 1000)  # recent, so retention (7 days by default) keeps it
    values = [os.urandom(VALUE_SIZE) for _ in range(RECORDS_PER_BATCH)]
    batch = encode_batch([NewRecord(None, value, now_ms) for value in values])
    per_partition = size // (TOPICS * PARTITIONS)
    began = time.monotonic()
    written = 0
    for t in range(TOPICS):
        topic = logs.create_topic(f"startup-{t}", PARTITIONS, {})
        for partition in topic.partitions:
            filled = 0
            while filled < per_partition:
                records = bytearray(batch)  # append writes each batch's base offset in place
                partition.log.append(records, list(iter_batches(records)))
                filled += len(records)
            written += filled
            rate = written / MB / max(time.monotonic() - began, 1e-3)
            say(f"writing the {size / GB:.0f} GB log: {written / GB:.1f} GB, {rate:.0f} MB/s")
    say("closing the large log (fsync)")
    logs.shutdown()
    _large_logs[size] = data_dir
    return data_dir


def clean_marker(data_dir: Path) -> bool:
    return (data_dir / CLEAN_SHUTDOWN_MARKER).exists()


# --- one start ----------------------------------------------------------------------------------


def ready_line(broker: Broker) -> tuple[int, str, float]:
    """(partitions, "opened after a clean stop" or "recovered", ms) from Millpond's log."""
    deadline = time.monotonic() + LINE_TIMEOUT_S
    while True:
        match = READY_LINE.search(broker.log_text())
        if match is not None:
            return int(match.group(1)), match.group(2), float(match.group(3))
        broker.check_alive("start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no ready line in the log:\n{broker.log_tail()}")
        time.sleep(0.05)


def timed_start(
    system: str,
    data_dir: Path,
    log_path: Path,
    prefix: str,
    extra: tuple[str, ...] = (),
    *,
    expect: str | None = None,
) -> tuple[Broker, Measured]:
    """Spawn and time until listening and until a Metadata answer; the broker is left running
    (stopped here only if timing fails). `expect`: how Millpond must say it opened the data
    dir ("opened after a clean stop" or "recovered")."""
    log_path.write_bytes(b"")  # the ready line must be this start's
    broker = spawn(system, data_dir, log_path, extra)
    try:
        measured = {
            f"{prefix}.listening_s": wait_until_listening(broker),
            f"{prefix}.metadata_s": wait_for_metadata(broker),
        }
        if system == "millpond":
            partitions, how, ms = ready_line(broker)
            measured[f"{prefix}.ready_ms"] = ms
            measured[f"{prefix}.partitions"] = float(partitions)
            if expect is not None and how != expect:
                raise RuntimeError(f"{prefix}: the broker {how} the data dir, not {expect}")
    except BaseException:
        stop(broker)
        raise
    return broker, measured


def stop_cleanly(broker: Broker, data_dir: Path) -> None:
    if not stop(broker) or not clean_marker(data_dir):
        raise RuntimeError(
            f"{broker.system} did not stop cleanly (exit {broker.process.returncode}):\n"
            f"{broker.log_tail()}"
        )


def produce_tail(broker: Broker, seconds: float) -> int:
    """acks=1 produce of 1 KiB values to every large-log topic for `seconds`, then wait for
    every ack; returns the bytes of values acknowledged."""
    acked = 0
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal acked
        if err is None:
            acked += len(msg.value())
        elif len(errors) < 5:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": 1,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "enable.idempotence": False,
            "on_delivery": on_delivery,
        }
    )
    topics = [f"startup-{t}" for t in range(TOPICS)]
    for topic in topics:
        producer.list_topics(topic, timeout=30)
    value = os.urandom(VALUE_SIZE)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        try:
            producer.produce(topics[sent % TOPICS], value)
            sent += 1
        except BufferError:
            producer.poll(0.01)
        if sent % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0 or errors:
        raise RuntimeError(f"tail produce: {acked // VALUE_SIZE}/{sent} acked: {errors}")
    return acked


# --- the run ------------------------------------------------------------------------------------


def run_once(system: str, repeat: int, options: argparse.Namespace, say: Say) -> Measured:
    with tempfile.TemporaryDirectory(prefix=f"bench-startup-{system}-") as tmp:
        log_path = Path(tmp) / "broker.log"
        empty_dir = Path(tmp) / "data"
        empty_dir.mkdir()
        say("empty start")
        broker, measured = timed_start(system, empty_dir, log_path, "empty")
        stop(broker)
        if system != "millpond":
            return measured

        size = QUICK_LOG_BYTES if options.quick else LOG_BYTES
        data_dir = large_log(size, say)
        if not clean_marker(data_dir):  # an earlier repeat failed half-way: close it cleanly
            say("closing the large log cleanly after an earlier failure")
            broker, _ = timed_start(system, data_dir, log_path, "repair")
            stop_cleanly(broker, data_dir)
        measured["clean.log_gb"] = (
            sum(f.stat().st_size for f in data_dir.rglob("*.log") if f.is_file()) / GB
        )

        say(f"start after a clean stop, {size / GB:.0f} GB log")
        broker, started = timed_start(
            system, data_dir, log_path, "clean", expect="opened after a clean stop"
        )
        measured |= started
        stop_cleanly(broker, data_dir)

        for seconds in TAILS_S:
            prefix = f"crash_{seconds}s"
            say(f"{seconds} s of acks=1 produce, then kill -9")
            broker, _ = timed_start(system, data_dir, log_path, "before", NO_PERIODIC_FLUSH)
            try:
                tail = produce_tail(broker, seconds) if seconds else 0
            finally:
                kill(broker)
            measured[f"{prefix}.tail_mb"] = tail / MB
            say(f"recovery after {seconds} s of unflushed tail ({tail / MB:.0f} MB)")
            broker, started = timed_start(system, data_dir, log_path, prefix, expect="recovered")
            measured |= started
            stop_cleanly(broker, data_dir)
        return measured


def _crash_metrics(seconds: int) -> tuple[Metric, ...]:
    prefix = f"crash_{seconds}s"
    after = f"after kill -9 with {seconds} s of tail"
    return (
        Metric(f"{prefix}.tail_mb", f"unflushed tail MB ({seconds} s acks=1)", "lower"),
        Metric(f"{prefix}.listening_s", f"listening s {after}", "lower"),
        Metric(f"{prefix}.metadata_s", f"Metadata answer s {after}", "lower"),
        Metric(f"{prefix}.ready_ms", f"opening the data dir ms {after}", "lower"),
        Metric(f"{prefix}.partitions", f"partitions opened {after}", "lower"),
    )


SCENARIO = Scenario(
    name="startup",
    about="start-up: empty; after a clean stop with a 10 GB log (quick: 1 GB); after kill -9",
    systems=("millpond", "tansu"),
    metrics=(
        Metric("empty.listening_s", "empty: listening s", "lower"),
        Metric("empty.metadata_s", "empty: Metadata answer s", "lower"),
        Metric("empty.ready_ms", "empty: opening the data dir ms", "lower"),
        Metric("clean.log_gb", "log size GB", "higher"),
        Metric("clean.listening_s", "listening s after a clean stop", "lower"),
        Metric("clean.metadata_s", "Metadata answer s after a clean stop", "lower"),
        Metric("clean.ready_ms", "opening the data dir ms after a clean stop", "lower"),
        *(metric for seconds in TAILS_S for metric in _crash_metrics(seconds)),
    ),
    run_once=run_once,
)
