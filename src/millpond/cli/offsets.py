"""Pure helpers for the group commands: parsing reset targets, planning resets, measuring lag.

Nothing here talks to a broker, so every rule (clamping, shift arithmetic, duration syntax) is
unit-tested without sockets; `groups.py` gathers the offsets and performs the plan.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError

# Java's Duration.parse syntax as kafka-consumer-groups --by-duration takes it: PnDTnHnMn.nS.
_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> datetime.timedelta:
    """Parse an ISO-8601 duration such as PT1H30M, P1DT2H or PT0.5S.

    Raises UsageError for anything else, including an empty `P`/`PT` and negative durations.
    """
    match = _DURATION.fullmatch(text.strip())
    has_time_part = "T" in text.upper()
    parts = match.groupdict() if match else {}
    time_parts = [parts.get(name) for name in ("hours", "minutes", "seconds")]
    if (
        match is None
        or all(value is None for value in parts.values())
        or (has_time_part and all(value is None for value in time_parts))
    ):
        raise UsageError(
            f"bad duration {text!r}: expected ISO-8601 PnDTnHnMnS, e.g. PT1H30M or P1DT2H"
        )
    return datetime.timedelta(
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=float(parts["seconds"] or 0),
    )


def parse_datetime(text: str) -> datetime.datetime:
    """Parse an ISO-8601 date-time (e.g. 2026-01-31T12:00:00.000, ...Z, ...+01:00).

    A date-time without a zone is local time, as kafka-consumer-groups reads it. Returns an
    aware datetime; raises UsageError when the text is not ISO-8601.
    """
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"bad date-time {text!r}: expected ISO-8601, e.g. 2026-01-31T12:00:00 or "
            "2026-01-31T12:00:00+01:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def to_millis(moment: datetime.datetime) -> int:
    """Milliseconds since the Unix epoch, the unit of Kafka record timestamps."""
    return int(moment.timestamp() * 1000)


def parse_topic_partitions(spec: str) -> tuple[str, tuple[int, ...] | None]:
    """Split `--topic T` or `--topic T:0,2` into the topic and its partitions (None = all).

    Kafka topic names cannot contain ':', so the last colon separates the partition list.
    """
    topic, separator, partitions = spec.partition(":")
    if not topic:
        raise UsageError(f"bad --topic {spec!r}: expected TOPIC or TOPIC:P,P...")
    if not separator:
        return topic, None
    try:
        numbers = tuple(int(part) for part in partitions.split(","))
    except ValueError:
        raise UsageError(f"bad --topic {spec!r}: partitions must be numbers, e.g. T:0,1") from None
    if any(number < 0 for number in numbers):
        raise UsageError(f"bad --topic {spec!r}: partitions cannot be negative")
    return topic, tuple(sorted(set(numbers)))


@dataclass(frozen=True, slots=True)
class ToEarliest:
    """Reset to the log start offset."""


@dataclass(frozen=True, slots=True)
class ToLatest:
    """Reset to the log end offset: skip everything written so far."""


@dataclass(frozen=True, slots=True)
class ToOffset:
    offset: int


@dataclass(frozen=True, slots=True)
class ShiftBy:
    """Move the committed offset by `delta` (negative re-reads)."""

    delta: int


@dataclass(frozen=True, slots=True)
class ToTimestamp:
    """The first offset whose record timestamp is at or after `timestamp_ms`."""

    timestamp_ms: int


ResetStrategy = ToEarliest | ToLatest | ToOffset | ShiftBy | ToTimestamp


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """What the broker says about one partition a group reads: None = nothing committed."""

    topic: str
    partition: int
    committed_offset: int | None
    log_start_offset: int
    log_end_offset: int


@dataclass(frozen=True, slots=True)
class PlannedReset:
    topic: str
    partition: int
    current_offset: int | None
    new_offset: int


def clamp(offset: int, log_start_offset: int, log_end_offset: int) -> int:
    """Bring an offset into [log_start_offset, log_end_offset], the offsets a consumer can use."""
    return min(max(offset, log_start_offset), log_end_offset)


def plan_reset(
    partitions: Sequence[PartitionOffsets],
    strategy: ResetStrategy,
    offsets_for_time: Mapping[tuple[str, int], int] | None = None,
) -> list[PlannedReset]:
    """The new committed offset of each partition, sorted by topic and partition.

    For ToTimestamp, `offsets_for_time` holds the broker's answer to ListOffsets by timestamp
    per (topic, partition); -1 (or a missing entry) means no record at or after the time, so the
    partition resets to its log end. Every result is clamped to the partition's offsets.
    Raises CliError when ShiftBy meets a partition with no committed offset, as Kafka's tool
    does: there is nothing to shift from.
    """
    plan = []
    for state in sorted(partitions, key=lambda p: (p.topic, p.partition)):
        match strategy:
            case ToEarliest():
                target = state.log_start_offset
            case ToLatest():
                target = state.log_end_offset
            case ToOffset(offset):
                target = offset
            case ShiftBy(delta):
                if state.committed_offset is None:
                    raise CliError(
                        f"cannot shift {state.topic}:{state.partition}: the group has no "
                        "committed offset there"
                    )
                target = state.committed_offset + delta
            case ToTimestamp():
                found = (offsets_for_time or {}).get((state.topic, state.partition), -1)
                target = found if found >= 0 else state.log_end_offset
        plan.append(
            PlannedReset(
                topic=state.topic,
                partition=state.partition,
                current_offset=state.committed_offset,
                new_offset=clamp(target, state.log_start_offset, state.log_end_offset),
            )
        )
    return plan


def lag_messages(committed_offset: int | None, log_end_offset: int) -> int | None:
    """Records the group has yet to read; None when it has committed nothing."""
    if committed_offset is None:
        return None
    return max(log_end_offset - committed_offset, 0)


def format_age(seconds: float) -> str:
    """A short human duration: 0.4s, 42s, 5m07s, 3h05m, 2d04h."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
