"""Work-queue consumption: N messages of 1 KiB preloaded into one queue, then W workers drain it,
acknowledging every message, on Millpond (a share group on a 1-partition topic), Redis Streams (a
consumer group) and RabbitMQ (a durable classic queue).

Every server is started fresh per run, as a subprocess on a free loopback port with a temp data
dir, with its durable settings (see bench/README.md, "queues"), and stopped afterwards. Each
value opens with its sequence number, so the run checks that every message was acknowledged
exactly once. The clock of the consume phase runs from the workers' first poll to the last
acknowledgement; the server's CPU seconds are read from /proc around that phase.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import broker_bench
from bench.broker_bench import RunningBroker
from bench.scenarios import Measured
from bench.scenarios import Metric
from bench.scenarios import Say
from bench.scenarios import Scenario

VALUE_SIZE = 1024
SEQ = struct.Struct(">q")  # opens every value: the message's sequence number
WORKERS = 4
BATCH = 100  # records per poll: max.poll.records, XREADGROUP COUNT, basic_qos prefetch
PUBLISH_WINDOW = 1000  # RabbitMQ messages published and not yet confirmed
PRELOAD_CHUNK = 1000  # XADDs per pipeline round trip
POLL_TIMEOUT_S = 0.5
STOP_TIMEOUT_S = 15.0

QUEUE = "bench-queue"  # topic, stream key or queue name
GROUP = "bench-workers"  # share group or consumer group

REDIS_SERVER = Path("/usr/bin/redis-server")
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD = "epmd"
INSTALL_HINT = "run scripts/install-bench-deps"
CLIENTS_HINT = "run .venv/bin/pip install -e '.[bench]'"
PR_SET_CHILD_SUBREAPER = 36


def message_count(options: argparse.Namespace) -> int:
    return 5_000 if options.quick else 50_000


def values(messages: int) -> Iterator[bytes]:
    padding = os.urandom(VALUE_SIZE - SEQ.size)
    for seq in range(messages):
        yield SEQ.pack(seq) + padding


def deadline_s(messages: int) -> float:
    return max(60.0, messages / 200)


class Tally:
    """What the workers have acknowledged, shared between their threads."""

    def __init__(self, expected: int, workers: int) -> None:
        self.expected = expected
        # The workers and the main thread: the clock starts once every worker is connected.
        self.start_line = threading.Barrier(workers + 1)
        self.seqs: list[int] = []
        self.errors: list[BaseException] = []
        self.last_ack = 0.0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def ready(self) -> None:
        """Called by a worker once connected, just before its first poll."""
        self.start_line.wait(broker_bench.READY_TIMEOUT_S)

    def acked(self, seqs: list[int]) -> None:
        """Record a batch whose acknowledgement has just gone out (or been confirmed)."""
        now = time.perf_counter()
        with self._lock:
            self.seqs.extend(seqs)
            self.last_ack = max(self.last_ack, now)
            if len(self.seqs) >= self.expected:
                self.done.set()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.errors.append(error)
        self.start_line.abort()
        self.done.set()

    def check(self) -> None:
        """Raise unless every sequence number was acknowledged exactly once."""
        if self.errors:
            raise RuntimeError(f"a worker failed: {self.errors[0]!r}") from self.errors[0]
        unique = len(set(self.seqs))
        if len(self.seqs) != self.expected or unique != self.expected:
            raise RuntimeError(
                f"acknowledged {len(self.seqs)} messages, {unique} distinct, "
                f"of {self.expected} (lost or acknowledged twice)"
            )


def drain(server: RunningBroker, messages: int, worker: Callable[[int, Tally], None]) -> Measured:
    """Run WORKERS threads of `worker(index, tally)` until `messages` are acknowledged; time it
    from their first poll (each connects, then calls tally.ready()) to the last acknowledgement."""
    tally = Tally(messages, WORKERS)

    def run(index: int) -> None:
        try:
            worker(index, tally)
        except BaseException as error:  # reported by the main thread
            tally.failed(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    pid = server.process.pid
    server_cpu, client_cpu = broker_bench.cpu_seconds(pid), time.process_time()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed: tally.check says
        tally.ready()
    start = time.perf_counter()
    finished = tally.done.wait(deadline_s(messages))
    server_cpu = broker_bench.cpu_seconds(pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    tally.done.set()  # stops the workers on a timeout too
    for thread in threads:
        thread.join(30)
    if not finished and not tally.errors:
        raise RuntimeError(
            f"consume: {len(tally.seqs)}/{messages} acknowledged before the deadline"
        )
    tally.check()
    elapsed = tally.last_ack - start
    return {
        "consume.seconds": elapsed,
        "consume.msg_per_s": messages / elapsed,
        "consume.server_cpu_s": server_cpu,
        "consume.client_cpu_s": client_cpu,
        "server_peak_rss_mib": broker_bench.peak_rss_mib(pid),
    }


def preloaded(messages: int, seconds: float) -> Measured:
    return {"preload.seconds": seconds, "preload.msg_per_s": messages / seconds}


def alive(server: RunningBroker) -> None:
    if server.process.poll() is not None:
        msg = f"{server.name} exited with {server.process.returncode}"
        raise RuntimeError(f"{msg}:\n{server.log_tail()}")


# --- servers other than Millpond ----------------------------------------------------------------


def require(path: Path, what: str) -> None:
    if not path.exists():
        raise RuntimeError(f"{what} is not installed ({path} is missing): {INSTALL_HINT}")


def children() -> dict[int, str]:
    """This process's child processes: pid -> state (Z for a zombie)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = broker_bench._stat_fields(int(entry.name))
                if int(fields[1]) == os.getpid():
                    found[int(entry.name)] = fields[0]
    return found


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Adopt the orphans of the servers started inside: Erlang's helpers (erl_child_setup,
    inet_gethost, a short-lived epmd) leave their own process groups, and under an init that
    does not reap they would stay as zombies. On the way out, whatever was adopted is reaped,
    and anything of it still running is killed."""
    before = set(children())
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while adopted := {pid: st for pid, st in children().items() if pid not in before}:
            for pid, state in adopted.items():
                if state == "Z":
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
                elif time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's leader (SIGKILL after 10 s), then SIGKILL whatever is left of its
    process group."""
    broker_bench.stop(process)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: the leader's pid is the pgid


@contextlib.contextmanager
def running_server(
    name: str, command: list[str], tmp_dir: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[RunningBroker]:
    """Start `command` in its own process group and wait until `port` accepts connections;
    always stop the whole group."""
    log_path = tmp_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=tmp_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningBroker(name, process, port, log_path)
    try:
        deadline = time.monotonic() + broker_bench.READY_TIMEOUT_S
        while not broker_bench.accepts_connections(port):
            alive(server)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not listening after {broker_bench.READY_TIMEOUT_S}s")
            time.sleep(0.05)
        yield server
    finally:
        stop_group(process)


# --- Millpond: a share group --------------------------------------------------------------------


def run_millpond(messages: int, say: Say) -> Measured:
    from confluent_kafka import AcknowledgeType
    from confluent_kafka import KafkaException
    from confluent_kafka import Producer
    from confluent_kafka import ShareConsumer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin import AlterConfigOpType
    from confluent_kafka.admin import ConfigEntry
    from confluent_kafka.admin import ConfigResource
    from confluent_kafka.admin import NewTopic
    from confluent_kafka.admin import ResourceType

    with broker_bench.running_broker("millpond") as server:
        say("create topic, share group from earliest")
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        admin.create_topics([NewTopic(QUEUE, 1)])[QUEUE].result(broker_bench.TOPIC_TIMEOUT_S)
        reset = ConfigEntry(
            "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET
        )
        resource = ConfigResource(ResourceType.GROUP, GROUP, incremental_configs=[reset])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(broker_bench.TOPIC_TIMEOUT_S)

        say(f"preload {messages:,} (acks=all)")
        producer = Producer(broker_bench.producer_config(server.bootstrap, linger_ms=5))
        producer.list_topics(QUEUE, timeout=10)  # connect before the clock starts
        deliveries = broker_bench.Deliveries()
        start = time.perf_counter()
        for i, value in enumerate(values(messages)):
            broker_bench.produce(producer, QUEUE, value, on_delivery=deliveries)
            if i % 1000 == 0:
                producer.poll(0)
        deliveries.check("preload", messages, producer.flush(deadline_s(messages)))
        measured = preloaded(messages, deliveries.last - start)
        del producer, admin  # disconnect now, not when the broker goes away

        def worker(_index: int, tally: Tally) -> None:
            consumer = ShareConsumer(
                {
                    "bootstrap.servers": server.bootstrap,
                    "group.id": GROUP,
                    "share.acknowledgement.mode": "explicit",
                    "max.poll.records": BATCH,
                }
            )
            try:
                consumer.subscribe([QUEUE])
                tally.ready()
                while not tally.done.is_set():
                    seqs = []
                    for message in consumer.poll(POLL_TIMEOUT_S):
                        if message.error() is not None:
                            raise KafkaException(message.error())
                        consumer.acknowledge(message, AcknowledgeType.ACCEPT)
                        seqs.append(SEQ.unpack_from(message.value())[0])
                    if seqs:
                        failed = {tp: e for tp, e in consumer.commit_sync().items() if e}
                        if failed:
                            raise RuntimeError(f"commit_sync failed: {failed}")
                        tally.acked(seqs)
            finally:
                consumer.close()

        say(f"{WORKERS} share consumers drain {messages:,}")
        measured |= drain(server, messages, worker)
        alive(server)
        return measured


# --- Redis: Streams and a consumer group --------------------------------------------------------


def run_redis(messages: int, say: Say) -> Measured:
    require(REDIS_SERVER, "redis-server")
    try:
        import redis
    except ImportError as error:
        raise RuntimeError(f"the redis client is not installed: {CLIENTS_HINT}") from error

    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        tmp_dir = Path(tmp)
        port = broker_bench.free_port()
        command = [
            str(REDIS_SERVER),
            *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_dir)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
        ]
        with running_server("redis", command, tmp_dir, port) as server:
            client = redis.Redis(host="127.0.0.1", port=port)
            client.ping()
            client.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)

            say(f"preload {messages:,} (XADD, pipelined)")
            start = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for i, value in enumerate(values(messages), 1):
                pipe.xadd(QUEUE, {"v": value})
                if i % PRELOAD_CHUNK == 0 or i == messages:
                    pipe.execute()
            measured = preloaded(messages, time.perf_counter() - start)
            if client.xlen(QUEUE) != messages:
                raise RuntimeError(f"preload: stream holds {client.xlen(QUEUE)}/{messages}")
            client.close()

            def worker(index: int, tally: Tally) -> None:
                conn = redis.Redis(host="127.0.0.1", port=port)
                try:
                    conn.ping()
                    tally.ready()
                    while not tally.done.is_set():
                        reply = conn.xreadgroup(
                            GROUP,
                            f"worker-{index}",
                            {QUEUE: ">"},
                            count=BATCH,
                            block=int(POLL_TIMEOUT_S * 1000),
                        )
                        entries = reply[0][1] if reply else []
                        if entries:
                            conn.xack(QUEUE, GROUP, *(entry_id for entry_id, _ in entries))
                            tally.acked([SEQ.unpack_from(fields[b"v"])[0] for _, fields in entries])
                finally:
                    conn.close()

            say(f"{WORKERS} consumers drain {messages:,}")
            measured |= drain(server, messages, worker)
            alive(server)
            return measured


# --- RabbitMQ: a durable classic queue ----------------------------------------------------------


def rabbitmq_env(tmp_dir: Path, port: int, dist_port: int, epmd_port: int) -> dict[str, str]:
    """The environment of a RabbitMQ node that keeps everything in `tmp_dir`: its own node
    name, ports, Erlang cookie (in HOME), config (no plugins) and epmd."""
    home = tmp_dir / "home"
    home.mkdir()
    (tmp_dir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n")
    (tmp_dir / "enabled_plugins").write_text("[].\n")
    (tmp_dir / "rabbitmq-env.conf").write_text("")
    return {
        **os.environ,
        "HOME": str(home),
        "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_NODENAME": f"bench-{port}@localhost",
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_BASE": str(tmp_dir),
        "RABBITMQ_MNESIA_BASE": str(tmp_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(tmp_dir / "log"),
        "RABBITMQ_PID_FILE": str(tmp_dir / "rabbitmq.pid"),
        "RABBITMQ_CONFIG_FILE": str(tmp_dir / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(tmp_dir / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(tmp_dir / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp_dir / "enabled_plugins"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": str(tmp_dir / "plugins"),
        # The node registers with the epmd started for this run and never starts its own.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
    }


@contextlib.contextmanager
def running_rabbitmq(tmp_dir: Path) -> Iterator[RunningBroker]:
    epmd = shutil.which(EPMD)
    if epmd is None:
        raise RuntimeError(f"rabbitmq-server is installed but epmd is not found: {INSTALL_HINT}")
    port, dist_port, epmd_port = (broker_bench.free_port() for _ in range(3))
    env = rabbitmq_env(tmp_dir, port, dist_port, epmd_port)
    with (
        subreaper(),
        running_server(
            "epmd", [epmd, "-port", str(epmd_port), "-address", "127.0.0.1"], tmp_dir, epmd_port
        ),
        running_server("rabbitmq", [str(RABBITMQ_SERVER)], tmp_dir, port, env) as server,
    ):
        yield server


class ConfirmedPublisher:
    """Publishes persistent messages with publisher confirms, keeping up to PUBLISH_WINDOW
    unconfirmed (pika's BlockingConnection waits for every confirm, one at a time)."""

    def __init__(self, pika: Any, port: int, messages: int) -> None:
        self.pika = pika
        self.port = port
        self.messages = messages
        self.values = values(messages)
        self.published = 0
        self.confirmed = 0
        self.unconfirmed: deque[int] = deque()
        self.out_of_order: set[int] = set()
        self.error: str | None = None
        self.channel: Any = None
        self.properties = pika.BasicProperties(delivery_mode=2)

    def run(self) -> None:
        parameters = self.pika.ConnectionParameters("127.0.0.1", self.port)
        connection = self.pika.SelectConnection(
            parameters,
            on_open_callback=lambda conn: conn.channel(on_open_callback=self.on_channel),
            on_open_error_callback=lambda _conn, err: self.fail(f"connect: {err}", None),
            on_close_callback=lambda conn, _reason: conn.ioloop.stop(),
        )
        self.connection = connection
        connection.ioloop.start()
        if self.error is not None:
            raise RuntimeError(f"preload: {self.error}")
        if self.confirmed != self.messages:
            raise RuntimeError(f"preload: {self.confirmed}/{self.messages} confirmed")

    def fail(self, error: str, connection: Any) -> None:
        self.error = self.error or error
        if connection is None:
            self.connection.ioloop.stop()
        elif connection.is_open:
            connection.close()

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        channel.confirm_delivery(ack_nack_callback=self.on_confirm, callback=self.fill)

    def on_channel_closed(self, _channel: Any, reason: Any) -> None:
        if self.confirmed < self.messages:
            self.fail(f"channel closed: {reason}", self.connection)

    def fill(self, _frame: Any = None) -> None:
        while self.published < self.messages and len(self.unconfirmed) < PUBLISH_WINDOW:
            self.channel.basic_publish("", QUEUE, next(self.values), self.properties)
            self.published += 1
            self.unconfirmed.append(self.published)  # delivery tags count from 1

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, self.pika.spec.Basic.Nack):
            self.fail(f"message {method.delivery_tag} nacked", self.connection)
            return
        if method.multiple:
            while self.unconfirmed and self.unconfirmed[0] <= method.delivery_tag:
                self.out_of_order.discard(self.unconfirmed.popleft())
                self.confirmed += 1
        else:
            self.out_of_order.add(method.delivery_tag)
            while self.unconfirmed and self.unconfirmed[0] in self.out_of_order:
                self.out_of_order.discard(self.unconfirmed.popleft())
                self.confirmed += 1
        if self.confirmed == self.messages:
            self.connection.close()
        else:
            self.fill()


def run_rabbitmq(messages: int, say: Say) -> Measured:
    require(RABBITMQ_SERVER, "rabbitmq-server")
    try:
        import pika
    except ImportError as error:
        raise RuntimeError(f"the pika client is not installed: {CLIENTS_HINT}") from error

    with (
        tempfile.TemporaryDirectory(prefix="bench-rabbitmq-") as tmp,
        running_rabbitmq(Path(tmp)) as server,
    ):
        parameters = pika.ConnectionParameters("127.0.0.1", server.port)
        connection = pika.BlockingConnection(parameters)
        connection.channel().queue_declare(
            QUEUE, durable=True, arguments={"x-queue-type": "classic"}
        )
        connection.close()

        say(f"preload {messages:,} (persistent, confirmed)")
        start = time.perf_counter()
        ConfirmedPublisher(pika, server.port, messages).run()
        measured = preloaded(messages, time.perf_counter() - start)

        def worker(_index: int, tally: Tally) -> None:
            conn = pika.BlockingConnection(parameters)
            try:
                channel = conn.channel()
                channel.basic_qos(prefetch_count=BATCH)
                tally.ready()
                for method, _properties, body in channel.consume(
                    QUEUE, inactivity_timeout=POLL_TIMEOUT_S
                ):
                    if tally.done.is_set():
                        break
                    if method is None:
                        continue
                    channel.basic_ack(method.delivery_tag)
                    tally.acked([SEQ.unpack_from(body)[0]])
                channel.cancel()
            finally:
                conn.close()

        say(f"{WORKERS} consumers drain {messages:,}")
        measured |= drain(server, messages, worker)
        alive(server)
        return measured


# --- the scenario -------------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[int, Say], Measured]] = {
    "millpond": run_millpond,
    "redis": run_redis,
    "rabbitmq": run_rabbitmq,
}


def run_once(system: str, repeat: int, options: argparse.Namespace, say: Say) -> Measured:
    return RUNNERS[system](message_count(options), say)


SCENARIO = Scenario(
    name="queues",
    about=f"work queue: 1 KiB messages preloaded, {WORKERS} workers ack each, durable servers",
    systems=("millpond", "redis", "rabbitmq"),
    metrics=(
        Metric("consume.msg_per_s", "consume msg/s", "higher"),
        Metric("preload.msg_per_s", "preload msg/s", "higher"),
        Metric("consume.server_cpu_s", "server CPU s, consume", "lower"),
        Metric("server_peak_rss_mib", "server peak RSS MiB", "lower"),
        Metric("consume.client_cpu_s", "client CPU s, consume", "lower"),
    ),
    run_once=run_once,
)
