"""kill -9 soak: acks=all producers keep writing while the broker is SIGKILLed and restarted.

Two confluent-kafka producers (one idempotent, one plain acks=all) write keyed records whose
values carry a sequence number into a 3-partition topic (cleanup.policy=delete). The broker is
SIGKILLed at seeded random moments 0.5-3 s apart and restarted on the same port; the producers
retry through every restart. Afterwards every partition is read from the beginning and:

- every record whose delivery report said success is at the offset the report gave;
- each partition's offsets are consecutive from 0 (no holes);
- the idempotent producer's sequence numbers appear at most once, in order per key.

Bounded to roughly a minute of wall time.
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from kio.schema.create_topics.v7 import request as create_v7
from kio.schema.errors import ErrorCode

from tests.support.server import BrokerProcess
from tests.support.wire import WireClient

SEED = 9
TOPIC = "soak"
PARTITIONS = 3
KEYS_PER_PRODUCER = 24
KILL_PHASE_SECONDS = 35.0
MAX_KILLS = 15
MIN_KILLS = 5
PRODUCE_INTERVAL_SECONDS = 0.002
# Long enough that no record times out while the broker restarts, short enough to bound flush.
MESSAGE_TIMEOUT_MS = 45_000


@dataclass
class ProducerRun:
    name: str
    config: dict[str, Any]
    produced: int = 0
    acked: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (partition, offset)
    failed: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_delivery(self, error: KafkaError | None, message: Any) -> None:
        seq = int(message.value().split(b":")[1])
        with self.lock:
            if error is None:
                self.acked[seq] = (message.partition(), message.offset())
            else:
                self.failed[seq] = str(error)

    def on_error(self, error: KafkaError) -> None:
        # Broker-down errors are expected here; fatal ones are kept for the failure message.
        if error.fatal():
            self.errors.append(str(error))


def produce_until(run: ProducerRun, bootstrap: str, stop: threading.Event) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "linger.ms": 5,
            "error_cb": run.on_error,
            # Refused connections while the broker is down are the point: keep stderr quiet.
            "log_level": 2,
            **run.config,
        }
    )
    while not stop.is_set():
        value = f"{run.name}:{run.produced}".encode()
        key = f"{run.name}-{run.produced % KEYS_PER_PRODUCER}".encode()
        try:
            producer.produce(TOPIC, key=key, value=value, on_delivery=run.on_delivery)
        except BufferError:
            producer.poll(0.1)
            continue
        run.produced += 1
        producer.poll(0)
        time.sleep(PRODUCE_INTERVAL_SECONDS)
    return producer


def create_topic(bootstrap: str) -> None:
    request = create_v7.CreateTopicsRequest(
        topics=(
            create_v7.CreatableTopic(
                name=TOPIC,
                num_partitions=PARTITIONS,
                replication_factor=1,
                assignments=(),
                configs=(create_v7.CreatableTopicConfig(name="cleanup.policy", value="delete"),),
            ),
        ),
        timeout=datetime.timedelta(seconds=10),
        validate_only=False,
    )
    with WireClient(bootstrap) as client:
        response = client.call(request)
    assert response.topics[0].error_code == ErrorCode.none, response


def read_everything(bootstrap: str, deadline: float) -> dict[int, list[tuple[int, bytes]]]:
    """partition -> [(offset, value)] from offset 0 to the end, by assignment."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "soak-verify",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 2,
        }
    )
    records: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    try:
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        at_end: set[int] = set()
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < deadline, f"reading back timed out at {dict(records)}"
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(message.partition())
                continue
            records[message.partition()].append((message.offset(), message.value()))
    finally:
        consumer.close()
    return records


def test_acknowledged_records_survive_repeated_kill_9(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    broker = BrokerProcess(tmp_path / "data")
    idempotent = ProducerRun("idem", {"enable.idempotence": True})
    plain = ProducerRun(
        "plain", {"enable.idempotence": False, "retries": 1_000_000, "retry.backoff.ms": 50}
    )
    stop = threading.Event()
    producers: dict[str, Producer] = {}
    threads: list[threading.Thread] = []
    kills: list[float] = []
    try:
        broker.start()
        port = broker.port
        create_topic(broker.bootstrap)
        for run in (idempotent, plain):

            def work(run: ProducerRun = run) -> None:
                producers[run.name] = produce_until(run, broker.bootstrap, stop)

            thread = threading.Thread(target=work, name=f"producer-{run.name}", daemon=True)
            thread.start()
            threads.append(thread)

        while len(kills) < MAX_KILLS and (
            len(kills) < MIN_KILLS or time.monotonic() - started < KILL_PHASE_SECONDS
        ):
            time.sleep(rng.uniform(0.5, 3.0))
            broker.kill()
            kills.append(time.monotonic() - started)
            broker.start()
            assert broker.port == port, "the broker came back on another port"

        stop.set()
        for thread in threads:
            thread.join(timeout=10)
            assert not thread.is_alive()
        for name, producer in producers.items():
            unresolved = producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 5)
            assert unresolved == 0, f"{name}: {unresolved} records never got a delivery report"

        records = read_everything(broker.bootstrap, time.monotonic() + 30)
        report = (
            f"\n{len(kills)} kills at {[round(k, 1) for k in kills]}s;"
            f" idempotent: {idempotent.produced} produced, {len(idempotent.acked)} acked,"
            f" {len(idempotent.failed)} failed; plain: {plain.produced} produced,"
            f" {len(plain.acked)} acked, {len(plain.failed)} failed;"
            f" partitions: { {p: len(r) for p, r in sorted(records.items())} }"
        )
        print(report)
        assert not idempotent.errors, idempotent.errors
        assert not plain.errors, plain.errors
        check_log(records, idempotent, plain)
        assert broker.stop() == 0, broker.log()[-3000:]
        print(f"soak took {time.monotonic() - started:.1f}s")
    finally:
        stop.set()
        broker.kill()


def check_log(
    records: dict[int, list[tuple[int, bytes]]], idempotent: ProducerRun, plain: ProducerRun
) -> None:
    by_position: dict[tuple[int, int], bytes] = {}
    for partition, entries in records.items():
        offsets = [offset for offset, _value in entries]
        assert offsets == list(range(len(offsets))), (
            f"partition {partition} has holes or is out of order: "
            f"missing {sorted(set(range(max(offsets) + 1)) - set(offsets))[:20]}"
        )
        for offset, value in entries:
            by_position[(partition, offset)] = value

    for run in (idempotent, plain):
        lost = [
            (seq, position)
            for seq, position in run.acked.items()
            if by_position.get(position) != f"{run.name}:{seq}".encode()
        ]
        assert not lost, f"{run.name}: {len(lost)} acknowledged records lost, e.g. {lost[:10]}"

    seen: dict[int, int] = defaultdict(int)
    last_per_key: dict[int, int] = {}
    for partition in sorted(records):
        for _offset, value in records[partition]:
            name, seq_text = value.decode().split(":")
            if name != idempotent.name:
                continue
            seq = int(seq_text)
            seen[seq] += 1
            key = seq % KEYS_PER_PRODUCER
            previous = last_per_key.get(key, -1)
            assert seq > previous, f"idempotent key {key}: {seq} after {previous} in {partition}"
            last_per_key[key] = seq
    duplicates = {seq: count for seq, count in seen.items() if count > 1}
    assert not duplicates, f"idempotent producer duplicated {len(duplicates)}: {duplicates}"
