"""The HTTP listener on loopback: real requests, bad clients, and the broker serving it."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from millpond.console.http import MAX_HEAD_BYTES
from millpond.console.http import HttpServer
from millpond.console.metrics import BrokerMetrics
from millpond.console.metrics import PartitionStats
from tests.integration.test_wire import create_topic
from tests.integration.test_wire import produce
from tests.support.batches import build_batch
from tests.support.wire import WireClient

Address = tuple[str, int]


def ready() -> dict[str, object]:
    return {"status": "ready", "kafka": "127.0.0.1:9092"}


def run_with_server(
    scenario: Callable[[HttpServer, Address], Awaitable[None]],
    *,
    metrics: BrokerMetrics | None = None,
    health: Callable[[], dict[str, object]] = ready,
    timeout: float = 5.0,
) -> None:
    """Start a server on a free loopback port, run `scenario` against it, stop it."""

    async def main() -> None:
        server = HttpServer("127.0.0.1", 0, metrics or BrokerMetrics(), health, timeout=timeout)
        address = await server.start()
        try:
            await asyncio.wait_for(scenario(server, address), 30)
        finally:
            await server.stop()

    asyncio.run(main())


async def exchange(address: Address, raw: bytes, *, end_input: bool = False) -> bytes:
    """Send `raw` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(raw)
        if end_input:
            writer.write_eof()
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    assert status_line.startswith("HTTP/1.1 "), raw
    assert headers["content-length"] == str(len(body))
    assert headers["connection"] == "close"
    return int(status_line.split()[1]), headers, body


async def get(
    address: Address, path: str, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    request = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    return split_response(await exchange(address, request))


def get_with_http_client(address: Address, path: str) -> tuple[int, str, bytes]:
    """A GET by the standard library's client, as a probe or scraper would send it."""
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


# --- the listener on its own --------------------------------------------------------------------


def test_health_is_200_when_ready() -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        status, content_type, body = await asyncio.to_thread(
            get_with_http_client, address, "/health"
        )
        assert status == 200
        assert content_type == "application/json"
        assert json.loads(body) == {"status": "ready", "kafka": "127.0.0.1:9092"}

    run_with_server(scenario)


@pytest.mark.parametrize("state", ["starting", "stopping"])
def test_health_is_503_until_ready(state: str) -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        status, headers, body = await get(address, "/health?verbose=1")
        assert status == 503
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == {"status": state}

    run_with_server(scenario, health=lambda: {"status": state})


def test_metrics_are_prometheus_text_read_at_scrape_time() -> None:
    metrics = BrokerMetrics()
    end_offsets = iter(range(100))
    metrics.watch_partitions(lambda: [PartitionStats("t", 0, 0, next(end_offsets), 0)])
    metrics.request_handled("Produce", 0.001)

    async def scenario(_server: HttpServer, address: Address) -> None:
        for expected in (0, 1):
            status, content_type, body = await asyncio.to_thread(
                get_with_http_client, address, "/metrics"
            )
            assert status == 200
            assert content_type == CONTENT_TYPE_LATEST
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(body.decode())
                for sample in family.samples
            }
            assert samples["millpond_requests_total", (("api", "Produce"),)] == 1
            end = samples["millpond_partition_log_end_offset", (("partition", "0"), ("topic", "t"))]
            assert end == expected

    run_with_server(scenario, metrics=metrics)


def test_unknown_paths_are_404_and_other_methods_405() -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        status, _headers, _body = await get(address, "/")
        assert status == 404
        status, _headers, _body = await get(address, "/healthz")
        assert status == 404
        for method in ("POST", "HEAD", "DELETE", "OPTIONS"):
            status, headers, _body = await get(address, "/metrics", method)
            assert status == 405
            assert headers["allow"] == "GET"

    run_with_server(scenario)


@pytest.mark.parametrize(
    ("raw", "end_input"),
    [
        (b"hello\r\n\r\n", False),
        (b"GET /health HTTP/1.1\r\n\r\n", False),  # no Host
        (b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", False),
        (b"\x00\xff\xfe junk \x7f\r\n\r\n", False),
        (b"GET /hea", True),  # the client gave up mid-head
    ],
)
def test_malformed_requests_are_400(raw: bytes, end_input: bool) -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        status, _headers, _body = split_response(await exchange(address, raw, end_input=end_input))
        assert status == 400
        status, _headers, _body = await get(address, "/health")
        assert status == 200

    run_with_server(scenario)


def test_a_connection_closed_without_a_request_gets_nothing() -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        assert await exchange(address, b"", end_input=True) == b""
        status, _headers, _body = await get(address, "/health")
        assert status == 200

    run_with_server(scenario)


def test_an_oversized_head_is_refused_and_the_connection_closed() -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        # Never ends its head: the server must stop reading at the limit, not wait for more.
        raw = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * (MAX_HEAD_BYTES + 1024)
        try:
            answer = await exchange(address, raw)
        except ConnectionResetError:
            answer = b""  # closed with our bytes still unread: also a refusal
        if answer:
            status, _headers, _body = split_response(answer)
            assert status == 431
        status, _headers, _body = await get(address, "/health")
        assert status == 200

    run_with_server(scenario)


def test_a_client_that_sends_nothing_times_out() -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        reader, writer = await asyncio.open_connection(*address)
        try:
            status, _headers, _body = split_response(await asyncio.wait_for(reader.read(), 10))
        finally:
            writer.close()
        assert status == 408

    run_with_server(scenario, timeout=0.2)


def test_a_failing_source_is_a_500_not_a_dead_listener() -> None:
    metrics = BrokerMetrics()

    def broken() -> Iterable[PartitionStats]:
        raise RuntimeError("partition vanished")

    metrics.watch_partitions(broken)

    def broken_health() -> dict[str, object]:
        raise RuntimeError("no state")

    async def scenario(_server: HttpServer, address: Address) -> None:
        for path in ("/metrics", "/health"):
            status, _headers, _body = await get(address, path)
            assert status == 500

    run_with_server(scenario, metrics=metrics, health=broken_health)


def test_concurrent_clients_are_all_answered() -> None:
    async def scenario(_server: HttpServer, address: Address) -> None:
        paths = ["/health", "/metrics", "/nope"] * 30
        answers = await asyncio.gather(*(get(address, path) for path in paths))
        assert [status for status, _headers, _body in answers] == [200, 200, 404] * 30

    run_with_server(scenario)


def test_stop_closes_the_listener_and_open_connections(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = HttpServer("127.0.0.1", 0, BrokerMetrics(), ready)
        address = await server.start()
        idle = [await asyncio.open_connection(*address) for _ in range(3)]
        half = await asyncio.open_connection(*address)
        half[1].write(b"GET /health HTTP/1.1\r\n")
        await half[1].drain()
        await asyncio.sleep(0.05)  # let the server accept them all

        await asyncio.wait_for(server.stop(), 5)

        for reader, writer in [*idle, half]:
            with contextlib.suppress(ConnectionResetError):  # reset is as closed as it gets
                assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
        await server.stop()  # a second stop is harmless

    asyncio.run(main())
    # Nothing for asyncio to complain about: no cancelled or failed connection tasks.
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


# --- the broker serving it -----------------------------------------------------------------------

HTTP_READY = re.compile(r"millpond ready on .*http on (?P<host>[^ ,]+):(?P<port>\d+)")
KAFKA_READY = re.compile(r"millpond ready on (?P<host>[^ ]+):(?P<port>\d+)")


@contextmanager
def broker_with_http(data_dir: Path) -> Iterator[tuple[str, Address]]:
    """A `millpond serve --http-listen 127.0.0.1:0`: (Kafka bootstrap, HTTP address)."""
    log_path = data_dir.parent / "broker.log"
    args = [
        sys.executable,
        "-m",
        "millpond",
        "serve",
        "--data-dir",
        str(data_dir),
        "--kafka-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while (match := HTTP_READY.search(log_path.read_text(errors="replace"))) is None:
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.02)
        kafka = KAFKA_READY.search(log_path.read_text(errors="replace"))
        assert kafka is not None
        yield f"127.0.0.1:{kafka['port']}", (match["host"], int(match["port"]))
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_broker_serves_health_and_metrics(tmp_path: Path) -> None:
    with broker_with_http(tmp_path / "data") as (bootstrap, address):
        status, content_type, body = get_with_http_client(address, "/health")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(body)["status"] == "ready"

        with WireClient(bootstrap) as client:
            create_topic(client, "t", 2)
            produce(client, "t", bytes(build_batch([b"a", b"b", b"c"])), acks=1)
            consumer = Consumer(
                {"bootstrap.servers": bootstrap, "group.id": "billing", "enable.auto.commit": False}
            )
            try:  # a commit without joining: the group is one record behind on each partition
                consumer.commit(offsets=[TopicPartition("t", 0, 2)], asynchronous=False)
                consumer.commit(offsets=[TopicPartition("t", 1, 0)], asynchronous=False)
            finally:
                consumer.close()

            status, content_type, body = get_with_http_client(address, "/metrics")
            assert (status, content_type) == (200, CONTENT_TYPE_LATEST)
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(body.decode())
                for sample in family.samples
            }
            assert samples["millpond_open_connections", ()] >= 1  # ours, maybe the consumer's
        partition_0 = (("partition", "0"), ("topic", "t"))
        assert samples["millpond_partition_log_start_offset", partition_0] == 0
        assert samples["millpond_partition_log_end_offset", partition_0] == 3
        assert samples["millpond_partition_size_bytes", partition_0] > 0
        assert (
            samples["millpond_partition_log_end_offset", (("partition", "1"), ("topic", "t"))] == 0
        )
        assert samples["millpond_requests_total", (("api", "Produce"),)] == 1
        assert samples["millpond_requests_total", (("api", "CreateTopics"),)] == 1
        assert samples["millpond_request_latency_seconds_count", (("api", "Produce"),)] == 1
        assert samples["millpond_bytes_received_total", ()] > 0
        assert samples["millpond_bytes_sent_total", ()] > 0
        group_0 = (("group", "billing"), ("partition", "0"), ("topic", "t"))
        group_1 = (("group", "billing"), ("partition", "1"), ("topic", "t"))
        assert samples["millpond_group_committed_offset", group_0] == 2
        assert samples["millpond_group_lag_messages", group_0] == 1
        assert samples["millpond_group_lag_seconds", group_0] >= 0
        assert samples["millpond_group_lag_messages", group_1] == 0
        assert ("millpond_group_lag_seconds", group_1) not in samples  # caught up: no sample
