"""Load on one broker: 500 partitions, 1,000 concurrent connections, and a slow reader.

The 1,000 clients are asyncio streams speaking the wire protocol directly (not librdkafka
instances): all connect first and stay connected, then each sends ApiVersions, Metadata for the
500-partition topic, an acks=all Produce of one record and a Fetch of it back. The broker's
resident memory (VmRSS, VmHWM from /proc/PID/status) is printed before and after and its peak
must stay under 1 GiB.

The slow reader asks again and again for ~10 MB of a partition and never reads its socket. The
broker should stop reading from it (its responses are not drained, and it caps requests in
flight per connection at 64), so its memory must level off instead of growing with every request
sent, and other clients must still be served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import re
import resource
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.index import load_response_schema
from kio.schema.api_versions.v3 import ApiVersionsRequest
from kio.schema.create_topics.v7 import request as create_v7
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.produce.v9 import request as produce_v9
from kio.serial import entity_reader
from kio.serial import entity_writer

from millpond.broker.server import MAX_IN_FLIGHT_PER_CONNECTION
from tests.support.batches import build_batch
from tests.support.server import BrokerProcess
from tests.support.server import running_broker
from tests.support.wire import WireClient

CLIENTS = 1_000
PARTITIONS = 500
CONNECT_WAVE = 100
GIB = 1 << 30
MIB = 1 << 20
SECOND = datetime.timedelta(seconds=1)

SLOW_TOPIC_BYTES = 10 * MIB
SLOW_FETCH_MAX_BYTES = 16 * MIB
SLOW_REQUESTS = 3_000
SLOW_SEND_SECONDS = 10.0
SLOW_SETTLE_SECONDS = 4.0


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            figures[name] = int(rest.split()[0])
    return figures


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


@pytest.fixture
def raised_fd_limit() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= 2 * CLIENTS + 200, f"fd hard limit {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def encode_request(request: Any, correlation_id: int, client_id: bytes = b"load") -> bytes:
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    buffer.write(
        struct.pack(
            ">hhih", request.__api_key__, request.__version__, correlation_id, len(client_id)
        )
    )
    buffer.write(client_id)
    if request.__flexible__:
        buffer.write(b"\0")
    entity_writer(type(request))(buffer, request)
    payload = bytearray(buffer.getvalue())
    struct.pack_into(">i", payload, 0, len(payload) - 4)
    return bytes(payload)


def decode_response(request: Any, frame: bytes) -> Any:
    schema = load_response_schema(request.__api_key__, request.__version__)
    offset = 4 + (1 if schema.__flexible__ and request.__api_key__ != 18 else 0)
    response, _ = entity_reader(schema)(frame, offset)
    return response


class AsyncWire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.correlation_id = 0

    @classmethod
    async def connect(cls, port: int) -> AsyncWire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, request: Any) -> Any:
        self.correlation_id += 1
        self.writer.write(encode_request(request, self.correlation_id))
        await self.writer.drain()
        (size,) = struct.unpack(">i", await self.reader.readexactly(4))
        frame = await self.reader.readexactly(size)
        assert struct.unpack_from(">i", frame, 0)[0] == self.correlation_id
        return decode_response(request, frame)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    request = create_v7.CreateTopicsRequest(
        topics=(
            create_v7.CreatableTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=1,
                assignments=(),
                configs=(),
            ),
        ),
        timeout=SECOND * 30,
        validate_only=False,
    )
    with WireClient(bootstrap, timeout=60) as client:
        response = client.call(request)
    assert response.topics[0].error_code == ErrorCode.none, response


def produce_request(topic: str, partition: int, records: bytes, acks: int) -> Any:
    return produce_v9.ProduceRequest(
        acks=acks,
        timeout=SECOND * 30,
        topic_data=(
            produce_v9.TopicProduceData(
                name=topic,
                partition_data=(produce_v9.PartitionProduceData(index=partition, records=records),),
            ),
        ),
    )


def fetch_request(topic: str, partition: int, offset: int, max_bytes: int) -> Any:
    return fetch_v12.FetchRequest(
        max_wait=datetime.timedelta(0),
        min_bytes=1,
        max_bytes=max_bytes,
        isolation_level=0,
        topics=(
            fetch_v12.FetchTopic(
                topic=topic,
                partitions=(
                    fetch_v12.FetchPartition(
                        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
    )


async def client_session(wire: AsyncWire, index: int) -> None:
    """ApiVersions, Metadata, Produce one record (acks=all), Fetch it back."""
    versions = await wire.call(
        ApiVersionsRequest(client_software_name="load", client_software_version="1")
    )
    assert versions.error_code == ErrorCode.none
    metadata = await wire.call(
        metadata_v12.MetadataRequest(
            topics=(metadata_v12.MetadataRequestTopic(name="load", topic_id=None),),
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
    )
    assert metadata.topics[0].error_code == ErrorCode.none
    assert len(metadata.topics[0].partitions) == PARTITIONS
    partition = index % PARTITIONS
    value = f"client {index}".encode()
    produced = await wire.call(produce_request("load", partition, build_batch([value]), acks=-1))
    result = produced.responses[0].partition_responses[0]
    assert result.error_code == ErrorCode.none, result
    fetched = await wire.call(fetch_request("load", partition, result.base_offset, MIB))
    fetched_partition = fetched.responses[0].partitions[0]
    assert fetched_partition.error_code == ErrorCode.none
    assert value in bytes(fetched_partition.records or b"")


async def thousand_clients(port: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    wires: list[AsyncWire] = []
    try:
        # Waves, so the listen backlog (asyncio's default is 100) never overflows into SYN
        # retransmits; every connection then stays open until all sessions are done.
        for wave in range(0, CLIENTS, CONNECT_WAVE):
            wires += await asyncio.gather(
                *(AsyncWire.connect(port) for _ in range(min(CONNECT_WAVE, CLIENTS - wave)))
            )
        timings["connect"] = time.monotonic() - started
        sessions = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(client_session(wire, i) for i, wire in enumerate(wires))), 60
        )
        timings["sessions"] = time.monotonic() - sessions
    finally:
        await asyncio.gather(*(wire.close() for wire in wires))
    return timings


def test_thousand_connections_over_500_partitions(tmp_path: Path, raised_fd_limit: int) -> None:
    started = time.monotonic()
    with running_broker(tmp_path / "data", fd_limit=raised_fd_limit) as broker:
        assert broker.process is not None
        pid = broker.process.pid
        create_topic(broker.bootstrap, "load", PARTITIONS)
        before = memory_kib(pid)
        timings = asyncio.run(thousand_clients(broker.port))
        after = memory_kib(pid)
        assert broker.process.poll() is None
    print(
        f"\n{CLIENTS} connections x (ApiVersions, Metadata, Produce acks=all, Fetch) over"
        f" {PARTITIONS} partitions: connect {timings['connect']:.1f}s,"
        f" sessions {timings['sessions']:.1f}s, total {time.monotonic() - started:.1f}s;"
        f" broker RSS before {mib(before['VmRSS'])} (peak {mib(before['VmHWM'])}),"
        f" after {mib(after['VmRSS'])} (peak {mib(after['VmHWM'])})"
    )
    assert after["VmHWM"] * 1024 < GIB


def fill_slow_topic(bootstrap: str) -> int:
    """~10 MiB in partition 0 of topic "slow"; returns the size of a whole-partition fetch."""
    value = bytes(100 * 1024)
    batches = 0
    with WireClient(bootstrap, timeout=30) as client:
        while batches * 9 * len(value) < SLOW_TOPIC_BYTES:
            records = build_batch([value] * 9)
            result = client.call(produce_request("slow", 0, records, acks=1))
            assert result.responses[0].partition_responses[0].error_code == ErrorCode.none
            batches += 1
        fetched = client.call(fetch_request("slow", 0, 0, SLOW_FETCH_MAX_BYTES))
    return len(bytes(fetched.responses[0].partitions[0].records or b""))


def broker_metrics(broker: BrokerProcess) -> dict[str, float]:
    """Fetch responses handed to the transport and bytes read, from the broker's /metrics."""
    port = HTTP_LISTENER.findall(broker.log())[-1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    figures = {}
    for name, pattern in METRICS.items():
        match = re.search(pattern, text, re.MULTILINE)
        figures[name] = float(match[1]) if match else 0.0
    return figures


HTTP_LISTENER = re.compile(r"http on 127\.0\.0\.1:(\d+)")
METRICS = {
    "fetch_responses": r'^millpond_requests_total\{api="Fetch"\} (\S+)',
    "bytes_received": r"^millpond_bytes_received_total (\S+)",
}


@pytest.fixture
def slow_topic_broker(tmp_path: Path) -> Iterator[tuple[BrokerProcess, int]]:
    with running_broker(tmp_path / "data") as broker:
        create_topic(broker.bootstrap, "slow", 1)
        yield broker, fill_slow_topic(broker.bootstrap)


def test_slow_reader_does_not_grow_the_broker_without_bound(
    slow_topic_broker: tuple[BrokerProcess, int],
) -> None:
    broker, response_bytes = slow_topic_broker
    assert broker.process is not None
    pid = broker.process.pid
    baseline = memory_kib(pid)
    metrics_before = broker_metrics(broker)
    samples, sent = slow_reader(broker, pid)
    metrics_during = broker_metrics(broker)
    after = memory_kib(pid)
    assert broker.process.poll() is None
    time.sleep(0.5)
    released = memory_kib(pid)

    request_bytes = len(encode_request(slow_fetch(), 1, SLOW_CLIENT_ID))
    read = (metrics_during["bytes_received"] - metrics_before["bytes_received"]) / request_bytes
    answered = metrics_during["fetch_responses"] - metrics_before["fetch_responses"]
    sending = [rss for when, rss, _ in samples if when <= SLOW_SEND_SECONDS]
    settling = [rss for when, rss, _ in samples if when > SLOW_SEND_SECONDS]
    bystander_worst = max(latency for _, _, latency in samples)
    print(
        f"\nslow reader: sent {sent} of {SLOW_REQUESTS} Fetch requests ({request_bytes} B each,"
        f" asking for {response_bytes / MIB:.1f} MiB) before its socket stopped taking more;"
        f" the broker read ~{read:.0f} of them and handed {answered:.0f} responses to the"
        f" transport; broker RSS baseline {mib(baseline['VmRSS'])},"
        f" max while sending {mib(max(sending))}, max while settling {mib(max(settling))},"
        f" peak {mib(after['VmHWM'])}, after the reader left {mib(released['VmRSS'])};"
        f" worst bystander ApiVersions latency {bystander_worst * 1000:.0f} ms"
    )
    # Not without bound: the broker stopped reading long before every request was sent, had
    # at most MAX_IN_FLIGHT requests of this connection answered, and its memory did not
    # keep climbing once the reader was stalled.
    assert sent < SLOW_REQUESTS
    assert answered <= MAX_IN_FLIGHT
    assert max(settling) <= max(sending) + 64 * 1024
    assert after["VmHWM"] * 1024 < GIB
    assert bystander_worst < 2.0


SLOW_CLIENT_ID = b"s" * 16_000  # large requests, so unread ones fill the kernel's buffers
MAX_IN_FLIGHT = MAX_IN_FLIGHT_PER_CONNECTION
BURST_REQUESTS = 200
BURST_MAX_BYTES = 2 * MIB


def slow_fetch(max_bytes: int = SLOW_FETCH_MAX_BYTES) -> Any:
    return fetch_request("slow", 0, 0, max_bytes)


def slow_reader(broker: BrokerProcess, pid: int) -> tuple[list[tuple[float, int, float]], int]:
    """Send Fetch requests without ever reading; sample (seconds, RSS KiB, bystander latency)."""
    request = slow_fetch()
    samples: list[tuple[float, int, float]] = []
    sent = 0
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, so the broker's writes back up at once.
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", broker.port))
    slow.setblocking(False)
    pending = b""
    started = time.monotonic()
    next_sample = started
    try:
        with WireClient(broker.bootstrap) as bystander:
            while (elapsed := time.monotonic() - started) < SLOW_SEND_SECONDS + SLOW_SETTLE_SECONDS:
                if not pending and sent < SLOW_REQUESTS and elapsed < SLOW_SEND_SECONDS:
                    pending = encode_request(request, sent + 1, SLOW_CLIENT_ID)
                blocked = True
                if pending:
                    with contextlib.suppress(BlockingIOError):
                        pending = pending[slow.send(pending) :]
                        sent += not pending
                        blocked = False
                if time.monotonic() >= next_sample:
                    asked = time.monotonic()
                    bystander.call(
                        ApiVersionsRequest(client_software_name="t", client_software_version="1")
                    )
                    latency = time.monotonic() - asked
                    samples.append((elapsed, memory_kib(pid)["VmRSS"], latency))
                    next_sample += 0.25
                if blocked:
                    time.sleep(0.02)
    finally:
        slow.close()
    return samples, sent


def test_pipelined_burst_from_a_slow_reader_is_capped(
    slow_topic_broker: tuple[BrokerProcess, int],
) -> None:
    broker, _ = slow_topic_broker
    assert broker.process is not None
    pid = broker.process.pid
    baseline = memory_kib(pid)
    before = broker_metrics(broker)
    request = slow_fetch(BURST_MAX_BYTES)
    burst = b"".join(encode_request(request, i + 1) for i in range(BURST_REQUESTS))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", broker.port))
        slow.sendall(burst)  # ~18 KB: the broker gets all of it in one read
        time.sleep(3)
        during = broker_metrics(broker)
        held = memory_kib(pid)
    answered = during["fetch_responses"] - before["fetch_responses"]
    print(
        f"\npipelined burst of {BURST_REQUESTS} Fetches ({BURST_MAX_BYTES / MIB:.0f} MiB each)"
        f" in one write, never read: {answered:.0f} answered into the transport buffer;"
        f" broker RSS {mib(baseline['VmRSS'])} -> {mib(held['VmRSS'])}"
    )
    assert answered <= MAX_IN_FLIGHT
