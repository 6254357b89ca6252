"""Pure helpers of the group commands: no sockets."""

from __future__ import annotations

import datetime

import pytest

from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError
from millpond.cli.offsets import PartitionOffsets
from millpond.cli.offsets import PlannedReset
from millpond.cli.offsets import ShiftBy
from millpond.cli.offsets import ToEarliest
from millpond.cli.offsets import ToLatest
from millpond.cli.offsets import ToOffset
from millpond.cli.offsets import ToTimestamp
from millpond.cli.offsets import clamp
from millpond.cli.offsets import format_age
from millpond.cli.offsets import lag_messages
from millpond.cli.offsets import parse_datetime
from millpond.cli.offsets import parse_duration
from millpond.cli.offsets import parse_topic_partitions
from millpond.cli.offsets import plan_reset
from millpond.cli.offsets import to_millis

td = datetime.timedelta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT1H30M", td(hours=1, minutes=30)),
        ("P1DT2H", td(days=1, hours=2)),
        ("P2D", td(days=2)),
        ("PT45S", td(seconds=45)),
        ("PT0.5S", td(milliseconds=500)),
        ("pt10m", td(minutes=10)),
        ("P1DT1H1M1S", td(days=1, hours=1, minutes=1, seconds=1)),
    ],
)
def test_parse_duration(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "PT-1H", "P1H", "PT1D", "P1W", "PT1H junk"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="bad duration"):
        parse_duration(text)


def test_parse_datetime_with_zone() -> None:
    moment = parse_datetime("2026-01-31T12:00:00.250+01:00")
    assert to_millis(moment) == to_millis(
        datetime.datetime(2026, 1, 31, 11, 0, 0, 250_000, tzinfo=datetime.UTC)
    )
    assert parse_datetime("2026-01-31T12:00:00Z") == datetime.datetime(
        2026, 1, 31, 12, tzinfo=datetime.UTC
    )


def test_parse_datetime_without_zone_is_local_time() -> None:
    moment = parse_datetime("2026-01-31T12:00:00")
    assert moment.tzinfo is not None
    assert moment == datetime.datetime(2026, 1, 31, 12).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00", "12:00", ""])
def test_parse_datetime_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="bad date-time"):
        parse_datetime(text)


def test_parse_topic_partitions() -> None:
    assert parse_topic_partitions("orders") == ("orders", None)
    assert parse_topic_partitions("orders:2,0,2") == ("orders", (0, 2))
    for bad in ("orders:", "orders:a", ":1", "orders:-1"):
        with pytest.raises(UsageError):
            parse_topic_partitions(bad)


def state(partition: int, committed: int | None, start: int, end: int) -> PartitionOffsets:
    return PartitionOffsets("t", partition, committed, start, end)


PARTITIONS = [state(1, 7, 5, 10), state(0, 3, 0, 10)]


def new_offsets(plan: list[PlannedReset]) -> list[int]:
    return [row.new_offset for row in plan]


def test_plan_is_sorted_and_keeps_current_offsets() -> None:
    plan = plan_reset(PARTITIONS, ToEarliest())
    assert plan == [PlannedReset("t", 0, 3, 0), PlannedReset("t", 1, 7, 5)]


def test_plan_to_latest() -> None:
    assert new_offsets(plan_reset(PARTITIONS, ToLatest())) == [10, 10]


def test_plan_to_offset_is_clamped() -> None:
    assert new_offsets(plan_reset(PARTITIONS, ToOffset(2))) == [2, 5]
    assert new_offsets(plan_reset(PARTITIONS, ToOffset(99))) == [10, 10]


def test_plan_shift_by_is_clamped_both_ways() -> None:
    assert new_offsets(plan_reset(PARTITIONS, ShiftBy(-4))) == [0, 5]
    assert new_offsets(plan_reset(PARTITIONS, ShiftBy(2))) == [5, 9]
    assert new_offsets(plan_reset(PARTITIONS, ShiftBy(50))) == [10, 10]


def test_plan_shift_by_needs_a_committed_offset() -> None:
    with pytest.raises(CliError, match="no committed offset"):
        plan_reset([state(0, None, 0, 10)], ShiftBy(1))


def test_plan_to_timestamp_uses_lookup_and_log_end_when_nothing_is_later() -> None:
    plan = plan_reset(PARTITIONS, ToTimestamp(1_000), {("t", 0): 4, ("t", 1): -1})
    assert new_offsets(plan) == [4, 10]
    # A lookup below the log start (the record was deleted meanwhile) is clamped.
    assert new_offsets(plan_reset(PARTITIONS, ToTimestamp(1_000), {("t", 1): 2})) == [10, 5]


def test_plan_without_committed_offset() -> None:
    assert plan_reset([state(0, None, 2, 8)], ToEarliest()) == [PlannedReset("t", 0, None, 2)]


def test_clamp() -> None:
    assert clamp(-1, 0, 5) == 0
    assert clamp(3, 0, 5) == 3
    assert clamp(6, 0, 5) == 5


def test_lag_messages() -> None:
    assert lag_messages(None, 10) is None
    assert lag_messages(4, 10) == 6
    assert lag_messages(10, 10) == 0
    assert lag_messages(12, 10) == 0  # committed past a truncated log end


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.44, "0.4s"),
        (-3, "0.0s"),
        (42, "42s"),
        (307, "5m07s"),
        (11_100, "3h05m"),
        (187_200, "2d04h"),
    ],
)
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text
