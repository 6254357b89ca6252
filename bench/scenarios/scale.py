"""Scale: one topic of 10,000 partitions and 1,000 idle client connections on one broker.

Times CreateTopics and the wait until every partition has a leader in Metadata, while a side
connection times ApiVersions and Metadata round trips (is the broker still answering while it
creates?). Then reads the broker's RSS, times 200 sequential acks=all produces to one partition,
opens 1,000 raw connections (each sends one ApiVersions v0 and stays open) and reads RSS again.

The helpers for starting a broker on a chosen data dir, raw Kafka requests over a plain socket
and /proc RSS live here; bench/scenarios/startup.py uses them too.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import NewTopic

from bench import broker_bench
from bench.broker_bench import percentile
from bench.broker_bench import process_tree
from bench.scenarios import Measured
from bench.scenarios import Metric
from bench.scenarios import Say
from bench.scenarios import Scenario

PARTITIONS = 10_000
QUICK_PARTITIONS = 1_000
CONNECTIONS = 1_000
QUICK_CONNECTIONS = 200
PRODUCES = 200
CREATE_TIMEOUT_S = 600.0
PROBE_INTERVAL_S = 0.02
FD_SAMPLE_EVERY = 10  # probe rounds: listing 40,000 fds is not free
SOCKET_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
TOPIC = "bench-scale"


# --- starting a broker --------------------------------------------------------------------------


def command(system: str, port: int, data_dir: Path, extra: Sequence[str] = ()) -> list[str]:
    """The broker's command line. Millpond's HTTP listener takes a free port, so that two
    benchmarks on one machine do not fight over the default 8080."""
    if system == "millpond":
        return [
            *(sys.executable, "-m", "millpond", "serve"),
            *("--data-dir", str(data_dir)),
            *("--kafka-listen", f"127.0.0.1:{port}"),
            *("--http-listen", "127.0.0.1:0"),
            *extra,
        ]
    return broker_bench.COMMANDS[system](port, data_dir)


@dataclass
class Broker:
    system: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    spawned_at: float  # time.perf_counter() just before Popen

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def check_alive(self, step: str) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.system} exited with {self.process.returncode} during {step}:\n"
                f"{self.log_tail()}"
            )


def spawn(system: str, data_dir: Path, log_path: Path, extra: Sequence[str] = ()) -> Broker:
    """Start `system` on a free loopback port with its output in `log_path`; returns at once."""
    port = broker_bench.free_port()
    with log_path.open("ab") as log:
        spawned_at = time.perf_counter()
        process = subprocess.Popen(
            command(system, port, data_dir, extra),
            cwd=data_dir.parent if system == "tansu" else broker_bench.REPO_DIR,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Broker(system, process, port, log_path, spawned_at)


def wait_until_listening(broker: Broker, timeout: float = READY_TIMEOUT_S) -> float:
    """Seconds from spawn until the port accepts a TCP connection (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", broker.port), timeout=1.0),
        ):
            return time.perf_counter() - broker.spawned_at
        broker.check_alive("start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{broker.system} not listening after {timeout:.0f} s")
        time.sleep(0.005)


def wait_for_metadata(broker: Broker, timeout: float = READY_TIMEOUT_S) -> float:
    """Seconds from spawn until a Metadata request for all topics is answered."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), connect(broker.port) as sock:
            call(sock, METADATA, 1, METADATA_ALL_TOPICS)
            return time.perf_counter() - broker.spawned_at
        broker.check_alive("start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{broker.system} gave no Metadata answer after {timeout:.0f} s")
        time.sleep(0.005)


def stop(broker: Broker, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True if the broker exited by itself with 0."""
    process = broker.process
    if process.poll() is not None:
        return process.returncode == 0
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout) == 0
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


def kill(broker: Broker) -> None:
    broker.process.kill()
    broker.process.wait()


@contextlib.contextmanager
def running(
    system: str, data_dir: Path, log_path: Path, extra: Sequence[str] = ()
) -> Iterator[Broker]:
    """A broker that accepts connections; always stopped on the way out."""
    broker = spawn(system, data_dir, log_path, extra)
    try:
        wait_until_listening(broker)
        yield broker
    finally:
        stop(broker)


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen backlog was full
    (TcpExt ListenOverflows, for the whole machine)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def raise_open_file_limit() -> None:
    """This process holds one socket per client connection: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard or hard == resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mib(root: int) -> float:
    """VmRSS (resident set size now), summed over the process tree, in MiB."""
    kib = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
    return kib / 1024


# --- raw Kafka requests -------------------------------------------------------------------------
#
#   request:  size int32 | api_key int16 | api_version int16 | correlation_id int32
#             | client_id int16-length string | body
#   response: size int32 | correlation_id int32 | body
#
# ApiVersions v0 and Metadata v1 both use these (non-flexible) headers.

API_VERSIONS = 18
METADATA = 3
CLIENT_ID = b"bench"
METADATA_ALL_TOPICS = struct.pack(">i", -1)  # v1: a null topic array means every topic
METADATA_NO_TOPICS = struct.pack(">i", 0)  # v1: an empty one means brokers only
_HEADER = struct.Struct(">hhih")
_SIZE = struct.Struct(">i")


def encode_request(api_key: int, version: int, correlation_id: int, body: bytes = b"") -> bytes:
    header = _HEADER.pack(api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return _SIZE.pack(len(header) + len(body)) + header + body


def connect(port: int, timeout: float = SOCKET_TIMEOUT_S) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def receive_response(sock: socket.socket, correlation_id: int) -> bytes:
    """One response's body (after the correlation id); raises if it answers another request."""
    (size,) = _SIZE.unpack(receive_exactly(sock, 4))
    frame = receive_exactly(sock, size)
    (answered,) = _SIZE.unpack_from(frame)
    if answered != correlation_id:
        raise ConnectionError(f"response to request {answered}, expected {correlation_id}")
    return frame[4:]


def call(sock: socket.socket, api_key: int, version: int, body: bytes = b"") -> bytes:
    sock.sendall(encode_request(api_key, version, 1, body))
    return receive_response(sock, 1)


def check_api_versions(body: bytes) -> None:
    (error,) = struct.unpack_from(">h", body)
    if error != 0:
        raise RuntimeError(f"ApiVersions v0 answered error code {error}")


def open_fds(pid: int) -> int:
    with contextlib.suppress(OSError):
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return 0


def open_file_limit(pid: int) -> str:
    """The soft limit on open files of process `pid`, from /proc/PID/limits."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
    return "unknown"


class Prober:
    """A side thread timing ApiVersions v0 and Metadata v1 (brokers only) round trips, one
    after the other with a short pause, on one connection, until stopped; every
    FD_SAMPLE_EVERY rounds it also counts the broker's open file descriptors."""

    def __init__(self, port: int, pid: int) -> None:
        self.round_trips_ms: list[float] = []
        self.peak_fds = open_fds(pid)
        self.error: str | None = None
        self._pid = pid
        self._sock = connect(port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        requests = ((API_VERSIONS, 0, b""), (METADATA, 1, METADATA_NO_TOPICS))
        rounds = 0
        try:
            while not self._stop.is_set():
                rounds += 1
                if rounds % FD_SAMPLE_EVERY == 0:
                    self.peak_fds = max(self.peak_fds, open_fds(self._pid))
                for api_key, version, body in requests:
                    began = time.perf_counter()
                    answer = call(self._sock, api_key, version, body)
                    self.round_trips_ms.append((time.perf_counter() - began) * 1000)
                    if api_key == API_VERSIONS:
                        check_api_versions(answer)
                self._stop.wait(PROBE_INTERVAL_S)
        except (OSError, RuntimeError) as error:
            self.error = f"{type(error).__name__}: {error}"

    def close(self) -> list[float]:
        self._stop.set()
        self._thread.join(SOCKET_TIMEOUT_S + 5)
        self._sock.close()
        if self.error is not None:
            raise RuntimeError(f"probe during topic creation failed: {self.error}")
        return self.round_trips_ms


# --- the steps ----------------------------------------------------------------------------------


@dataclass
class Held:
    """Client sockets kept open; closed together."""

    sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def create_partitions(broker: Broker, partitions: int, say: Say) -> Measured:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 300_000})
    admin.list_topics(timeout=30)  # connected before the clock starts
    prober = Prober(broker.port, broker.pid)
    say(f"CreateTopics with {partitions:,} partitions")
    began = time.perf_counter()
    try:
        futures = admin.create_topics(
            [NewTopic(TOPIC, num_partitions=partitions)],
            request_timeout=CREATE_TIMEOUT_S,
            operation_timeout=CREATE_TIMEOUT_S,
        )
        try:
            futures[TOPIC].result(CREATE_TIMEOUT_S)
        except Exception as error:
            raise RuntimeError(
                f"CreateTopics of {partitions:,} partitions failed after "
                f"{time.perf_counter() - began:.1f} s: {error} (the broker had up to "
                f"{prober.peak_fds:,} open files, limit {open_file_limit(broker.pid)})"
            ) from error
        created = time.perf_counter() - began
        say("waiting for a leader on every partition")
        deadline = time.monotonic() + CREATE_TIMEOUT_S
        seen = 0
        while True:
            broker.check_alive("the wait for leaders")
            metadata = admin.list_topics(TOPIC, timeout=60).topics.get(TOPIC)
            if metadata is not None and metadata.error is None:
                led = [p for p in metadata.partitions.values() if p.leader >= 0]
                seen = len(led)
                if seen == partitions == len(metadata.partitions):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"after {CREATE_TIMEOUT_S:.0f} s {seen} partitions have leaders")
            time.sleep(0.1)
        led_after = time.perf_counter() - began
    finally:
        round_trips = prober.close()
    return {
        "create.create_s": created,
        "create.leaders_s": led_after,
        "create.probe_max_ms": max(round_trips),
        "create.probe_p50_ms": percentile(round_trips, 50),
        "create.probes": float(len(round_trips)),
        "create.peak_fds": float(max(prober.peak_fds, open_fds(broker.pid))),
    }


def produce_latency(broker: Broker, partitions: int) -> Measured:
    """PRODUCES sequential acks=all produces of one 100-byte message to partition 0, each
    flushed before the next is sent; the first, unmeasured one connects."""
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "linger.ms": 0,
            "enable.idempotence": False,
            "on_delivery": on_delivery,
        }
    )
    value = b"x" * 100
    latencies_ms = []
    for i in range(PRODUCES + 1):
        began = time.perf_counter()
        producer.produce(TOPIC, value, partition=0)
        if producer.flush(30) != 0:
            raise RuntimeError(f"produce {i} not acknowledged after 30 s")
        if i:
            latencies_ms.append((time.perf_counter() - began) * 1000)
    if errors:
        raise RuntimeError(f"produce failed: {errors[:3]}")
    return {
        "produce.p50_ms": percentile(latencies_ms, 50),
        "produce.p99_ms": percentile(latencies_ms, 99),
    }


def open_connections(broker: Broker, count: int, held: Held) -> Measured:
    """`count` connections, each answered one ApiVersions v0 and left open in `held`.

    They are opened one after the other, each sending its request at once; answers are read
    as they arrive. `slowest_connect_ms` is the longest connect(): one past 1,000 ms means the
    listen backlog was full and the kernel dropped the SYN, which is resent after 1 s, then 2 s,
    4 s... (`listen_overflows` counts those drops, machine-wide)."""
    request = encode_request(API_VERSIONS, 0, 1)
    unanswered = 0
    slowest_connect = 0.0
    overflows = listen_overflows()

    def read_answers(selector: selectors.BaseSelector, timeout: float) -> None:
        nonlocal unanswered
        for key, _events in selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            check_api_versions(receive_response(sock, 1))
            selector.unregister(sock)
            unanswered -= 1

    began = time.perf_counter()
    with selectors.DefaultSelector() as selector:
        for _ in range(count):
            opening = time.perf_counter()
            sock = connect(broker.port)
            slowest_connect = max(slowest_connect, time.perf_counter() - opening)
            held.sockets.append(sock)
            sock.sendall(request)
            selector.register(sock, selectors.EVENT_READ)
            unanswered += 1
            read_answers(selector, 0)
        deadline = time.monotonic() + SOCKET_TIMEOUT_S
        while unanswered:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{unanswered} of {count} connections got no ApiVersions")
            read_answers(selector, 1.0)
    opened = time.perf_counter() - began
    overflows = listen_overflows() - overflows
    # Is the broker still quick to answer a new client with all those connections open?
    with connect(broker.port) as sock:
        began = time.perf_counter()
        check_api_versions(call(sock, API_VERSIONS, 0))
        answered_ms = (time.perf_counter() - began) * 1000
    return {
        "connections.open_s": opened,
        "connections.slowest_connect_ms": slowest_connect * 1000,
        "connections.listen_overflows": float(overflows),
        "connections.api_versions_ms": answered_ms,
    }


def run_once(system: str, repeat: int, options: argparse.Namespace, say: Say) -> Measured:
    raise_open_file_limit()
    partitions = QUICK_PARTITIONS if options.quick else PARTITIONS
    connections = QUICK_CONNECTIONS if options.quick else CONNECTIONS
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{system}-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        held = Held()
        with running(system, data_dir, Path(tmp) / "broker.log") as broker:
            try:
                measured: Measured = {"idle_rss_mib": rss_mib(broker.pid)}
                measured |= create_partitions(broker, partitions, say)
                measured["create.rss_mib"] = rss_mib(broker.pid)
                say(f"{PRODUCES} acks=all produces, one at a time")
                measured |= produce_latency(broker, partitions)
                broker.check_alive("produce")
                say(f"opening {connections:,} connections")
                measured |= open_connections(broker, connections, held)
                measured["connections.rss_mib"] = rss_mib(broker.pid)
                measured["peak_rss_mib"] = broker_bench.peak_rss_mib(broker.pid)
                broker.check_alive("the connections")
            except Exception as error:
                raise RuntimeError(f"{error}\nbroker log tail:\n{broker.log_tail()}") from error
            finally:
                held.close()
    return measured


SCENARIO = Scenario(
    name="scale",
    about="one topic of 10,000 partitions (quick: 1,000), then 1,000 idle connections (quick: 200)",
    systems=("millpond", "tansu"),
    metrics=(
        Metric("idle_rss_mib", "RSS MiB, idle", "lower"),
        Metric("create.create_s", "CreateTopics s", "lower"),
        Metric("create.leaders_s", "until every partition has a leader, s", "lower"),
        Metric("create.probe_max_ms", "max ApiVersions/Metadata ms during creation", "lower"),
        Metric("create.probe_p50_ms", "p50 ApiVersions/Metadata ms during creation", "lower"),
        Metric("create.peak_fds", "broker's open files (peak while creating)", "lower"),
        Metric("create.rss_mib", "RSS MiB with the partitions", "lower"),
        Metric("produce.p50_ms", "acks=all produce p50 ms", "lower"),
        Metric("produce.p99_ms", "acks=all produce p99 ms", "lower"),
        Metric("connections.open_s", "opening the connections s", "lower"),
        Metric("connections.slowest_connect_ms", "slowest connect() ms", "lower"),
        Metric("connections.listen_overflows", "listen backlog overflows (machine)", "lower"),
        Metric("connections.api_versions_ms", "ApiVersions ms with them open", "lower"),
        Metric("connections.rss_mib", "RSS MiB with the connections", "lower"),
        Metric("peak_rss_mib", "peak RSS MiB", "lower"),
    ),
    run_once=run_once,
)
