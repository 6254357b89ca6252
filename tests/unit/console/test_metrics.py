"""BrokerMetrics: what a scrape shows, rendered and parsed back with prometheus_client."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from millpond.console.metrics import BrokerMetrics
from millpond.console.metrics import PartitionStats
from millpond.coordinator.lag import GroupPartitionLag

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: BrokerMetrics) -> tuple[dict[str, str], Samples]:
    """Render and parse: (family name -> type, (sample name, labels) -> value)."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        types[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return types, samples


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def lag(group: str, partition: int, lag_seconds: float | None) -> GroupPartitionLag:
    return GroupPartitionLag(
        group=group,
        topic="orders",
        partition=partition,
        committed_offset=40,
        log_end_offset=42,
        lag_messages=2,
        lag_seconds=lag_seconds,
    )


def test_a_fresh_instance_shows_every_family_at_zero() -> None:
    types, samples = scrape(BrokerMetrics())
    # prometheus_client adds a `_created` gauge family for each counter without labels.
    assert {name: kind for name, kind in types.items() if not name.endswith("_created")} == {
        "millpond_open_connections": "gauge",
        "millpond_requests": "counter",
        "millpond_request_latency_seconds": "histogram",
        "millpond_bytes_received": "counter",
        "millpond_bytes_sent": "counter",
        "millpond_partition_log_start_offset": "gauge",
        "millpond_partition_log_end_offset": "gauge",
        "millpond_partition_size_bytes": "gauge",
        "millpond_group_committed_offset": "gauge",
        "millpond_group_lag_messages": "gauge",
        "millpond_group_lag_seconds": "gauge",
        "millpond_share_group_members": "gauge",
        "millpond_share_start_offset": "gauge",
        "millpond_share_lag_messages": "gauge",
        "millpond_share_records_in_flight": "gauge",
        "millpond_share_records_available": "gauge",
        "millpond_share_records_archived": "gauge",
        "millpond_share_oldest_available_age_seconds": "gauge",
        "millpond_share_dead_letters": "gauge",
    }
    assert samples["millpond_open_connections", labels()] == 0
    assert samples["millpond_bytes_received_total", labels()] == 0
    assert samples["millpond_bytes_sent_total", labels()] == 0


def test_connections_requests_and_bytes_are_counted() -> None:
    metrics = BrokerMetrics()
    for _ in range(3):
        metrics.connection_opened()
    metrics.connection_closed()
    metrics.request_handled("Produce", 0.0002)
    metrics.request_handled("Produce", 0.003)
    metrics.request_handled("Fetch", 7.5)
    metrics.bytes_received(100)
    metrics.bytes_received(23)
    metrics.bytes_sent(4096)

    _types, samples = scrape(metrics)
    assert samples["millpond_open_connections", labels()] == 2
    assert samples["millpond_requests_total", labels(api="Produce")] == 2
    assert samples["millpond_requests_total", labels(api="Fetch")] == 1
    assert samples["millpond_bytes_received_total", labels()] == 123
    assert samples["millpond_bytes_sent_total", labels()] == 4096

    def bucket(api: str, le: str) -> float:
        return samples["millpond_request_latency_seconds_bucket", labels(api=api, le=le)]

    assert bucket("Produce", "0.0001") == 0
    assert bucket("Produce", "0.00025") == 1
    assert bucket("Produce", "0.005") == 2
    assert bucket("Fetch", "5.0") == 0
    assert bucket("Fetch", "10.0") == 1
    assert bucket("Fetch", "+Inf") == 1
    assert samples["millpond_request_latency_seconds_count", labels(api="Produce")] == 2
    assert samples["millpond_request_latency_seconds_sum", labels(api="Produce")] == (
        pytest.approx(0.0032)
    )


def test_partition_stats_are_read_at_scrape_time() -> None:
    metrics = BrokerMetrics()
    calls = 0
    end_offset = 10

    def partitions() -> Iterable[PartitionStats]:
        nonlocal calls
        calls += 1
        yield PartitionStats("orders", 0, 3, end_offset, 2048)
        yield PartitionStats("orders", 1, 0, 0, 0)

    metrics.watch_partitions(partitions)
    assert calls == 0  # registering polls nothing

    _types, samples = scrape(metrics)
    assert calls == 1
    first = labels(topic="orders", partition="0")
    assert samples["millpond_partition_log_start_offset", first] == 3
    assert samples["millpond_partition_log_end_offset", first] == 10
    assert samples["millpond_partition_size_bytes", first] == 2048
    assert samples["millpond_partition_log_end_offset", labels(topic="orders", partition="1")] == 0

    end_offset = 25
    _types, samples = scrape(metrics)
    assert calls == 2
    assert samples["millpond_partition_log_end_offset", first] == 25


def test_group_lag_omits_lag_seconds_when_unknown() -> None:
    metrics = BrokerMetrics()
    metrics.watch_group_lag(lambda: [lag("billing", 0, 1.5), lag("billing", 1, None)])

    _types, samples = scrape(metrics)
    known = labels(group="billing", topic="orders", partition="0")
    unknown = labels(group="billing", topic="orders", partition="1")
    for where in (known, unknown):
        assert samples["millpond_group_committed_offset", where] == 40
        assert samples["millpond_group_lag_messages", where] == 2
    assert samples["millpond_group_lag_seconds", known] == 1.5
    assert ("millpond_group_lag_seconds", unknown) not in samples


def test_every_watched_source_is_read() -> None:
    metrics = BrokerMetrics()
    metrics.watch_partitions(lambda: [PartitionStats("a", 0, 0, 1, 10)])
    metrics.watch_partitions(lambda: [PartitionStats("b", 0, 0, 2, 20)])

    _types, samples = scrape(metrics)
    assert samples["millpond_partition_size_bytes", labels(topic="a", partition="0")] == 10
    assert samples["millpond_partition_size_bytes", labels(topic="b", partition="0")] == 20


def test_a_failing_source_fails_the_render() -> None:
    metrics = BrokerMetrics()

    def broken() -> Iterable[PartitionStats]:
        raise RuntimeError("partition vanished")

    metrics.watch_partitions(broken)
    with pytest.raises(RuntimeError, match="partition vanished"):
        metrics.render()


def test_instances_have_their_own_registries() -> None:
    first, second = BrokerMetrics(), BrokerMetrics()
    first.request_handled("Metadata", 0.001)

    _types, samples = scrape(second)
    assert ("millpond_requests_total", labels(api="Metadata")) not in samples
    assert "millpond_open_connections" not in REGISTRY._names_to_collectors


def test_a_given_registry_is_used_and_names_stay_unique() -> None:
    registry = CollectorRegistry()
    metrics = BrokerMetrics(registry)
    assert metrics.registry is registry
    assert registry.get_sample_value("millpond_open_connections") == 0
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        BrokerMetrics(registry)
