"""Share-group metrics: read from the share coordinator at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from millpond.console.metrics import BrokerMetrics
from millpond.coordinator.share_coordinator import PartitionSummary


class Shares:
    dead_lettered_total = 3

    def __init__(self) -> None:
        self.rows = [PartitionSummary("billing", "orders", 0, 40, 7, 2, 5, 1, 9_000)]

    def member_counts(self) -> Iterable[tuple[str, int]]:
        return [("billing", 2)]

    def all_summaries(self) -> Iterable[PartitionSummary]:
        return self.rows

    def wall_ms(self) -> int:
        return 10_000


def samples(metrics: BrokerMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[key] = sample.value
    return found


def test_share_groups_are_exported_per_group_and_partition() -> None:
    metrics = BrokerMetrics()
    shares = Shares()
    metrics.watch_share_groups(shares)
    found = samples(metrics)
    labels = (("group", "billing"), ("partition", "0"), ("topic", "orders"))
    assert found["millpond_share_group_members"][(("group", "billing"),)] == 2
    assert found["millpond_share_start_offset"][labels] == 40
    assert found["millpond_share_lag_messages"][labels] == 7
    assert found["millpond_share_records_in_flight"][labels] == 2
    assert found["millpond_share_records_available"][labels] == 5
    assert found["millpond_share_records_archived"][labels] == 1
    assert found["millpond_share_oldest_available_age_seconds"][labels] == 1.0
    assert found["millpond_share_dead_letters"][()] == 3


def test_a_partition_with_nothing_waiting_has_no_age_sample() -> None:
    metrics = BrokerMetrics()
    shares = Shares()
    shares.rows = [PartitionSummary("billing", "orders", 0, 40, 0, 0, 0, 0, None)]
    metrics.watch_share_groups(shares)
    found = samples(metrics)
    assert "millpond_share_oldest_available_age_seconds" not in found
    assert found["millpond_share_lag_messages"]
