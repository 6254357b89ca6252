"""Produce-time schema validation: the cost of having the broker check every record's value
against an Avro schema, on Millpond and tansu.

Each system is started fresh per run with two 1-partition topics: `validated`, whose values the
broker checks, and `plain`, which it does not. N records of a realistic Avro `Order` (about 180
bytes encoded) go to each topic with the same confluent-kafka producer settings, and the
validation cost is how much slower `validated` is than `plain` on the same broker. Then a second
fresh broker, started without any validation set up, takes the same load on `plain` (`bare`):
a broker may slow every topic down once validation is on (tansu does). Each system gets its
values in the form its validation expects, encoded once before any clock starts:

- Millpond: Confluent's wire format (magic byte 0, the 4-byte schema id its registry answered,
  the Avro datum), on a topic with `confluent.value.schema.validation=true`; the schema is
  registered under `validated-value` through the REST API on its HTTP listener.
- tansu: an Avro object container file holding the one record (what tansu 0.6.0 decodes, with
  apache-avro's `Reader`: it reads the writer schema from the container's header, so every value
  carries it), with `validated.avsc` in the directory given to `--schema-registry`.

Outside the timing, each run checks that the broker refuses invalid values on `validated` with
INVALID_RECORD (`refuses_invalid`), so the comparison is of two brokers that really validate.
See bench/README.md, "schemas".
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import random
import struct
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import KafkaError
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # admin re-exports it undeclared: strict mypy

from bench import broker_bench
from bench.broker_bench import RunningBroker
from bench.scenarios import Measured
from bench.scenarios import Metric
from bench.scenarios import Say
from bench.scenarios import Scenario

VALIDATED = "validated"
PLAIN = "plain"
BARE = "bare"  # the plain topic, on a broker started without any validation set up
SCHEMA_DIR = "schemas"  # tansu's --schema-registry directory, relative to its cwd
POOL = 1024  # distinct records, encoded once and sent in turn
PER_100K = 100_000
CONFLUENT_HEADER = struct.Struct(">bI")  # magic byte 0, schema id

CURRENCIES = ("EUR", "USD", "GBP", "JPY")
STATUSES = ("NEW", "PAID", "SHIPPED", "DELIVERED", "CANCELLED")
ORDER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "bench.schemas",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "customer", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "sku", "type": "string"},
        {"name": "amount", "type": "double"},
        {
            "name": "currency",
            "type": {"type": "enum", "name": "Currency", "symbols": list(CURRENCIES)},
        },
        {
            "name": "status",
            "type": {"type": "enum", "name": "Status", "symbols": list(STATUSES)},
        },
        {"name": "express", "type": "boolean"},
        {"name": "quantity", "type": "int"},
        {"name": "created_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "shipping",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "street", "type": "string"},
                    {"name": "city", "type": "string"},
                    {"name": "postcode", "type": "string"},
                    {"name": "country", "type": "string"},
                ],
            },
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}

FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
CITIES = (
    ("Amsterdam", "NL"),
    ("Lyon", "FR"),
    ("Leeds", "GB"),
    ("Porto", "PT"),
    ("Graz", "AT"),
    ("Osaka", "JP"),
)
STREETS = ("Station Road", "Mill Lane", "Harbour Street", "Church Walk", "Market Square")
TAGS = ("gift", "fragile", "priority", "bulk", "returning-customer", "promo-2026", "b2b")
NOTES = ("leave with a neighbour", "call before delivery", "no plastic packaging")


def message_count(options: argparse.Namespace) -> int:
    return 20_000 if options.quick else 200_000


# --- the values ---------------------------------------------------------------------------------


def orders(count: int) -> list[dict[str, Any]]:
    """`count` distinct, deterministic orders (about 180 bytes each as an Avro datum)."""
    rng = random.Random(20_260_101)
    result = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, country = rng.choice(CITIES)
        result.append(
            {
                "id": 7_000_000_000 + i,
                "customer_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "customer": f"{first} {last}",
                "email": f"{first}.{last}{rng.randrange(1000)}@example.com".lower(),
                "sku": f"SKU-{rng.randrange(16**4):04X}-{rng.randrange(16**6):06X}",
                "amount": round(rng.uniform(1.0, 5000.0), 2),
                "currency": rng.choice(CURRENCIES),
                "status": rng.choice(STATUSES),
                "express": rng.random() < 0.2,
                "quantity": rng.randint(1, 20),
                "created_ms": 1_767_225_600_000 + i * 1_000,
                "shipping": {
                    "street": f"{rng.randint(1, 250)} {rng.choice(STREETS)}",
                    "city": city,
                    "postcode": f"{rng.randrange(10_000, 99_999)}",
                    "country": country,
                },
                "tags": rng.sample(TAGS, k=rng.randint(1, 4)),
                "note": rng.choice(NOTES) if rng.random() < 0.3 else None,
            }
        )
    return result


def datum(parsed: Any, record: dict[str, Any]) -> bytes:
    """The record as a bare Avro binary datum."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


def container(parsed: Any, record: dict[str, Any]) -> bytes:
    """The record as an Avro object container file of one block of one record (with the writer
    schema in its header): the value format tansu's Avro validation reads."""
    out = io.BytesIO()
    fastavro.writer(out, parsed, [record])
    return out.getvalue()


def confluent(schema_id: int, payload: bytes) -> bytes:
    """Confluent's wire format: magic byte 0, the big-endian schema id, then the payload."""
    return CONFLUENT_HEADER.pack(0, schema_id) + payload


def tansu_schema(topic: str) -> dict[str, Any]:
    """tansu's `<topic>.avsc`: a record whose `value` field is the value's schema. There is no
    `key` field, so keys are not checked (Millpond's topic checks values only, too)."""
    return {"type": "record", "name": topic, "fields": [{"name": "value", "type": ORDER_SCHEMA}]}


@dataclass(frozen=True, slots=True)
class Values:
    valid: list[bytes]  # sent in turn to both topics
    invalid: dict[str, bytes]  # what each must be refused on `validated`, by name


def millpond_values(registry_url: str, records: list[dict[str, Any]]) -> Values:
    """Register the schema under `validated-value`, and frame the data with the id answered."""
    request = urllib.request.Request(
        f"{registry_url}/subjects/{VALIDATED}-value/versions",
        data=json.dumps({"schema": json.dumps(ORDER_SCHEMA)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=broker_bench.TOPIC_TIMEOUT_S) as response:
        schema_id = int(json.load(response)["id"])
    parsed = fastavro.parse_schema(ORDER_SCHEMA)
    datums = [datum(parsed, record) for record in records]
    return Values(
        valid=[confluent(schema_id, d) for d in datums],
        invalid={
            "random_bytes": random.Random(1).randbytes(len(datums[0])),
            "no_header": datums[0],
            "unregistered_id": confluent(schema_id + 1000, datums[0]),
            "truncated": confluent(schema_id, datums[0][: len(datums[0]) // 2]),
        },
    )


def tansu_values(records: list[dict[str, Any]]) -> Values:
    parsed = fastavro.parse_schema(ORDER_SCHEMA)
    containers = [container(parsed, record) for record in records]
    return Values(
        valid=containers,
        invalid={
            "random_bytes": random.Random(1).randbytes(len(containers[0])),
            "bare_datum": datum(parsed, records[0]),
            "truncated": containers[0][: len(containers[0]) // 2],
        },
    )


# --- the brokers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    broker: RunningBroker
    registry_url: str | None  # Millpond's schema registry; tansu reads its schema directory


@contextlib.contextmanager
def started(system: str, *, validation: bool) -> Iterator[Started]:
    """Start `system` fresh on free loopback ports, wait until it listens, and always stop it.
    Millpond's HTTP listener (its registry, always there) gets a free port; tansu gets its
    schema directory only with `validation`."""
    with tempfile.TemporaryDirectory(prefix=f"bench-schemas-{system}-") as tmp:
        tmp_dir = Path(tmp)
        data_dir = tmp_dir / "data"
        data_dir.mkdir()
        port = broker_bench.free_port()
        ports = [port]
        registry_url = None
        if system == "millpond":
            http_port = broker_bench.free_port()
            ports.append(http_port)
            registry_url = f"http://127.0.0.1:{http_port}"
            command = [
                *broker_bench.millpond_command(port, data_dir),
                *("--http-listen", f"127.0.0.1:{http_port}"),
            ]
            cwd = broker_bench.REPO_DIR
        else:
            command = broker_bench.tansu_command(port, data_dir)
            if validation:
                (tmp_dir / SCHEMA_DIR).mkdir()
                (tmp_dir / SCHEMA_DIR / f"{VALIDATED}.avsc").write_text(
                    json.dumps(tansu_schema(VALIDATED))
                )
                # tansu resolves a file:// URL's path against its cwd.
                command += ["--schema-registry", f"file://./{SCHEMA_DIR}"]
            cwd = tmp_dir
        log_path = tmp_dir / "broker.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        broker = RunningBroker(system, process, port, log_path)
        try:
            deadline = time.monotonic() + broker_bench.READY_TIMEOUT_S
            while not all(broker_bench.accepts_connections(p) for p in ports):
                alive(broker)
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{system} not listening after {broker_bench.READY_TIMEOUT_S}s"
                    )
                time.sleep(0.05)
            yield Started(broker, registry_url)
        except Exception as error:
            error.add_note(f"{system} log tail:\n{broker.log_tail()}")
            raise
        finally:
            broker_bench.stop(process)


def alive(broker: RunningBroker) -> None:
    if broker.process.poll() is not None:
        msg = f"{broker.name} exited with {broker.process.returncode}"
        raise RuntimeError(f"{msg}:\n{broker.log_tail()}")


def create_topics(bootstrap: str, configs: dict[str, dict[str, str]]) -> None:
    """Create each topic of `configs` (name -> topic configs) with one partition, and wait until
    each has a leader in metadata."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, 1, config=cfg) for name, cfg in configs.items()])
    for future in futures.values():
        future.result(broker_bench.TOPIC_TIMEOUT_S)
    deadline = time.monotonic() + broker_bench.TOPIC_TIMEOUT_S
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        if all(
            name in topics
            and topics[name].error is None
            and len(topics[name].partitions) == 1
            and topics[name].partitions[0].leader >= 0
            for name in configs
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topics {sorted(configs)} have no leader in metadata")


# --- the measurements ---------------------------------------------------------------------------


def refused(bootstrap: str, invalid: dict[str, bytes]) -> Measured:
    """Produce each invalid value alone to `validated`: 1.0 for each refused with
    INVALID_RECORD, 0.0 for any other outcome (accepted, or another error)."""
    producer = Producer(broker_bench.producer_config(bootstrap, linger_ms=0))
    result: Measured = {}
    outcomes: dict[str, KafkaError | None] = {}

    def on_delivery(name: str, err: KafkaError | None, _msg: Any) -> None:
        outcomes[name] = err

    for name, value in invalid.items():
        # Alone in its batch: one invalid record refuses the whole batch.
        producer.produce(VALIDATED, value, on_delivery=functools.partial(on_delivery, name))
        producer.flush(broker_bench.TOPIC_TIMEOUT_S)
    for name in invalid:
        error = outcomes.get(name)
        result[f"refuses.{name}"] = float(
            error is not None and error.code() == KafkaError.INVALID_RECORD
        )
    return result


def produce(
    broker: RunningBroker, topic: str, values: list[bytes], messages: int, label: str
) -> Measured:
    """Send `messages` values (in turn from `values`) to `topic`, timed from the first produce to
    the last delivery report; fail on any delivery error, so a refused batch cannot pass for a
    fast one. Adds the broker's and the client's CPU seconds over the phase. The keys of the
    result start with `label`."""
    deliveries = broker_bench.Deliveries()
    config = broker_bench.producer_config(broker.bootstrap, linger_ms=5)
    producer = Producer({**config, "on_delivery": deliveries})
    producer.list_topics(topic, timeout=10)  # connect before the clock starts
    pid = broker.process.pid
    broker_cpu, client_cpu = broker_bench.cpu_seconds(pid), time.process_time()
    pool = len(values)
    start = time.perf_counter()
    for i in range(messages):
        broker_bench.produce(producer, topic, values[i % pool])
        if i % 1000 == 0:
            producer.poll(0)
    unsent = producer.flush(max(60.0, messages / 1000))
    broker_cpu = broker_bench.cpu_seconds(pid) - broker_cpu
    client_cpu = time.process_time() - client_cpu
    deliveries.check(topic, messages, unsent)
    alive(broker)
    elapsed = deliveries.last - start
    return {
        f"{label}.seconds": elapsed,
        f"{label}_msgs_per_s": messages / elapsed,
        f"{label}.broker_cpu_s": broker_cpu,
        f"{label}_broker_cpu_s_per_100k": broker_cpu / messages * PER_100K,
        f"{label}.client_cpu_s": client_cpu,
    }


def run_once(system: str, repeat: int, options: argparse.Namespace, say: Say) -> Measured:
    messages = message_count(options)
    records = orders(POOL)
    with started(system, validation=True) as run:
        bootstrap = run.broker.bootstrap
        if run.registry_url is not None:
            say("register the schema, create the topics")
            values = millpond_values(run.registry_url, records)
            validated_config = {"confluent.value.schema.validation": "true"}
        else:
            say("create the topics")
            values = tansu_values(records)
            validated_config = {}
        create_topics(bootstrap, {VALIDATED: validated_config, PLAIN: {}})
        say("invalid values on validated")
        measured = refused(bootstrap, values.invalid)
        measured["refuses_invalid"] = float(
            all(measured[f"refuses.{name}"] for name in values.invalid)
        )
        measured["value_bytes"] = sum(map(len, values.valid)) / len(values.valid)
        # Alternate which topic goes first, so that warming up favours neither.
        for topic in (VALIDATED, PLAIN) if repeat % 2 == 0 else (PLAIN, VALIDATED):
            say(f"produce {messages:,} to {topic}")
            measured |= produce(run.broker, topic, values.valid, messages, topic)
        measured["broker_peak_rss_mib"] = broker_bench.peak_rss_mib(run.broker.process.pid)
    # The same load on a broker with no validation set up: tansu's `plain` topic is slower
    # when the broker has a schema registry at all, so `plain` alone would hide that cost.
    with started(system, validation=False) as bare:
        say(f"produce {messages:,} to {PLAIN}, no validation set up")
        create_topics(bare.broker.bootstrap, {PLAIN: {}})
        measured |= produce(bare.broker, PLAIN, values.valid, messages, BARE)
    validated = measured[f"{VALIDATED}_msgs_per_s"]
    measured["validation_cost_pct"] = (1 - validated / measured[f"{PLAIN}_msgs_per_s"]) * 100
    measured["validation_cost_vs_bare_pct"] = (1 - validated / measured[f"{BARE}_msgs_per_s"]) * 100
    measured["validation_broker_cpu_s_per_100k"] = (
        measured[f"{VALIDATED}_broker_cpu_s_per_100k"] - measured[f"{PLAIN}_broker_cpu_s_per_100k"]
    )
    return measured


SCENARIO = Scenario(
    name="schemas",
    about="produce-time Avro validation: a validated and a plain 1-partition topic, acks=all",
    systems=("millpond", "tansu"),
    metrics=(
        Metric("validated_msgs_per_s", "validated produce msg/s", "higher"),
        Metric("plain_msgs_per_s", "plain produce msg/s", "higher"),
        Metric("bare_msgs_per_s", "bare produce msg/s (no validation set up)", "higher"),
        Metric("validation_cost_pct", "validation cost % of plain msg/s", "lower"),
        Metric("validation_cost_vs_bare_pct", "validation cost % of bare msg/s", "lower"),
        Metric("validated_broker_cpu_s_per_100k", "broker CPU s per 100k, validated", "lower"),
        Metric("plain_broker_cpu_s_per_100k", "broker CPU s per 100k, plain", "lower"),
        Metric("bare_broker_cpu_s_per_100k", "broker CPU s per 100k, bare", "lower"),
        Metric(
            "validation_broker_cpu_s_per_100k",
            "broker CPU s per 100k, validation only",
            "lower",
        ),
        Metric("refuses_invalid", "refuses invalid values (1 = all)", "higher"),
        Metric("value_bytes", "value bytes on the wire", "lower"),
        Metric("broker_peak_rss_mib", "broker peak RSS MiB", "lower"),
    ),
    run_once=run_once,
)
