"""The broker's Prometheus metrics: counters the server bumps, state read at scrape time.

==========================================  =========  ========================  =================
metric                                      type       labels                    updated
==========================================  =========  ========================  =================
millpond_open_connections                   gauge      -                         on connect/close
millpond_requests_total                     counter    api                       per response
millpond_request_latency_seconds            histogram  api                       per response
millpond_bytes_received_total               counter    -                         per socket read
millpond_bytes_sent_total                   counter    -                         per response
millpond_partition_log_start_offset         gauge      topic, partition          at scrape
millpond_partition_log_end_offset           gauge      topic, partition          at scrape
millpond_partition_size_bytes               gauge      topic, partition          at scrape
millpond_group_committed_offset             gauge      group, topic, partition   at scrape
millpond_group_lag_messages                 gauge      group, topic, partition   at scrape
millpond_group_lag_seconds                  gauge      group, topic, partition   at scrape
millpond_share_group_members                gauge      group                     at scrape
millpond_share_start_offset                 gauge      group, topic, partition   at scrape
millpond_share_lag_messages                 gauge      group, topic, partition   at scrape
millpond_share_records_in_flight            gauge      group, topic, partition   at scrape
millpond_share_records_available            gauge      group, topic, partition   at scrape
millpond_share_records_archived             gauge      group, topic, partition   at scrape
millpond_share_oldest_available_age_seconds gauge      group, topic, partition   at scrape
millpond_share_dead_letters                 gauge      -                         at scrape
==========================================  =========  ========================  =================

`api` is the Kafka API name (`Produce`, `Fetch`, ...). Counters and the histogram also carry
prometheus_client's usual `_created` series. `millpond_group_lag_seconds` has no sample for a
partition whose lag in time is unknown (caught up, or the oldest unconsumed record is gone).

"At scrape" metrics come from a collector that calls the registered sources while the registry
is rendered: nothing polls in the background, and the values are never stale. The sources read
broker state that only the event loop thread may touch, so `render()` must run on that thread
(the HTTP listener calls it there).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from millpond.coordinator.lag import GroupPartitionLag
from millpond.coordinator.share_coordinator import PartitionSummary

# 0.1 ms .. 10 s in roughly 1-2.5-5 steps: a cached Metadata answer lands in the first buckets,
# an acks=all Produce waiting on fsync in the middle, a long-poll Fetch near the top.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_PARTITION_LABELS = ("topic", "partition")
_GROUP_LABELS = ("group", "topic", "partition")


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """One partition's log as a scrape sees it."""

    topic: str
    partition: int
    log_start_offset: int
    log_end_offset: int
    size_bytes: int


PartitionSource = Callable[[], Iterable[PartitionStats]]


class ShareSource(Protocol):
    dead_lettered_total: int

    def member_counts(self) -> Iterable[tuple[str, int]]: ...

    def all_summaries(self) -> Iterable[PartitionSummary]: ...

    def wall_ms(self) -> int: ...


GroupLagSource = Callable[[], Iterable[GroupPartitionLag]]


class _BrokerStateCollector:
    """Turns the registered sources into gauge families, calling them on every collect."""

    def __init__(self) -> None:
        self.partition_sources: list[PartitionSource] = []
        self.group_lag_sources: list[GroupLagSource] = []

    def describe(self) -> Iterator[Metric]:
        # Lets the registry reject a second collector claiming the same names.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        start, end, size, committed, lag_messages, lag_seconds = families
        for source in self.partition_sources:
            for stats in source():
                labels = [stats.topic, str(stats.partition)]
                start.add_metric(labels, stats.log_start_offset)
                end.add_metric(labels, stats.log_end_offset)
                size.add_metric(labels, stats.size_bytes)
        for lag_source in self.group_lag_sources:
            for lag in lag_source():
                labels = [lag.group, lag.topic, str(lag.partition)]
                committed.add_metric(labels, lag.committed_offset)
                lag_messages.add_metric(labels, lag.lag_messages)
                if lag.lag_seconds is not None:
                    lag_seconds.add_metric(labels, lag.lag_seconds)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "millpond_partition_log_start_offset",
                "First offset still in the partition's log.",
                labels=_PARTITION_LABELS,
            ),
            GaugeMetricFamily(
                "millpond_partition_log_end_offset",
                "Offset the next record appended to the partition will get.",
                labels=_PARTITION_LABELS,
            ),
            GaugeMetricFamily(
                "millpond_partition_size_bytes",
                "Bytes of the partition's log segments on disk.",
                labels=_PARTITION_LABELS,
            ),
            GaugeMetricFamily(
                "millpond_group_committed_offset",
                "Offset the consumer group last committed for the partition.",
                labels=_GROUP_LABELS,
            ),
            GaugeMetricFamily(
                "millpond_group_lag_messages",
                "Records between the group's committed offset and the log end offset.",
                labels=_GROUP_LABELS,
            ),
            GaugeMetricFamily(
                "millpond_group_lag_seconds",
                "Age of the oldest record the group has not consumed yet.",
                labels=_GROUP_LABELS,
            ),
        )


class _ShareGroupCollector:
    """Share groups as a scrape sees them: members, and per partition where the group stands."""

    def __init__(self) -> None:
        self.sources: list[ShareSource] = []

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        members, start, lag, in_flight, available, archived, age, dead = families
        for source in self.sources:
            dead.add_metric([], source.dead_lettered_total)
            for group, count in source.member_counts():
                members.add_metric([group], count)
            now = source.wall_ms()
            for row in source.all_summaries():
                labels = [row.group_id, row.topic, str(row.partition)]
                start.add_metric(labels, row.start_offset)
                lag.add_metric(labels, row.lag)
                in_flight.add_metric(labels, row.in_flight)
                available.add_metric(labels, row.available)
                archived.add_metric(labels, row.archived_total)
                if row.oldest_available_timestamp is not None:
                    age.add_metric(labels, max(0, now - row.oldest_available_timestamp) / 1000)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        def family(name: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        return (
            family("millpond_share_group_members", "Members of the share group.", ("group",)),
            family(
                "millpond_share_start_offset",
                "Share-partition start offset: every record before it is done.",
                _GROUP_LABELS,
            ),
            family(
                "millpond_share_lag_messages",
                "Records from the start offset to the log end not yet acknowledged or archived.",
                _GROUP_LABELS,
            ),
            family(
                "millpond_share_records_in_flight",
                "Records acquired by members and not yet acknowledged.",
                _GROUP_LABELS,
            ),
            family(
                "millpond_share_records_available",
                "Records waiting to be acquired (delayed ones included).",
                _GROUP_LABELS,
            ),
            family(
                "millpond_share_records_archived",
                "Records archived (rejected or out of deliveries) since the broker started.",
                _GROUP_LABELS,
            ),
            family(
                "millpond_share_oldest_available_age_seconds",
                "Age of the oldest record waiting to be acquired.",
                _GROUP_LABELS,
            ),
            family(
                "millpond_share_dead_letters",
                "Records copied to dead-letter topics since the broker started.",
                (),
            ),
        )


class BrokerMetrics:
    """Counters the server updates, plus collectors that read broker state at scrape time.

    Everything lives in `registry` (a fresh one by default, never prometheus_client's global
    REGISTRY), so several brokers or tests in one process do not share counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._open_connections = Gauge(
            "millpond_open_connections",
            "Kafka client connections currently open.",
            registry=self.registry,
        )
        self._requests = Counter(
            "millpond_requests_total",
            "Kafka requests answered, by API.",
            ["api"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "millpond_request_latency_seconds",
            "Time from a request's arrival to its response being written, by API.",
            ["api"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._bytes_received = Counter(
            "millpond_bytes_received_total",
            "Bytes read from Kafka client connections.",
            registry=self.registry,
        )
        self._bytes_sent = Counter(
            "millpond_bytes_sent_total",
            "Bytes of responses written to Kafka client connections.",
            registry=self.registry,
        )
        self._state = _BrokerStateCollector()
        self.registry.register(self._state)
        self._shares = _ShareGroupCollector()
        self.registry.register(self._shares)

    def connection_opened(self) -> None:
        self._open_connections.inc()

    def connection_closed(self) -> None:
        self._open_connections.dec()

    def request_handled(self, api_name: str, seconds: float) -> None:
        """Count one answered request of `api_name` that took `seconds`."""
        self._requests.labels(api=api_name).inc()
        self._latency.labels(api=api_name).observe(seconds)

    def bytes_received(self, count: int) -> None:
        self._bytes_received.inc(count)

    def bytes_sent(self, count: int) -> None:
        self._bytes_sent.inc(count)

    def watch_partitions(self, source: PartitionSource) -> None:
        """Add a source of partition stats; it is called on every scrape, never in between."""
        self._state.partition_sources.append(source)

    def watch_share_groups(self, source: ShareSource) -> None:
        """Add the share coordinator; it is read on every scrape, never in between."""
        self._shares.sources.append(source)

    def watch_group_lag(self, source: GroupLagSource) -> None:
        """Add a source of consumer group lag; it is called on every scrape, never in between."""
        self._state.group_lag_sources.append(source)

    def render(self) -> bytes:
        """The registry in Prometheus text format (served with CONTENT_TYPE_LATEST).

        Calls the watched sources, so run it on the event loop thread. A source's exception
        propagates to the caller.
        """
        return generate_latest(self.registry)
