"""Pure helpers of the dead-letter commands: reading dead-letter headers, rendering records,
choosing where each one is redriven and how far a chunk's delivery reports let redrive commit.

Nothing here talks to a broker; `dlq.py` reads the dead-letter topic and performs the redrive.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE
from confluent_kafka import Message

from millpond.cli.errors import CliError

HEADER_PREFIX = "_dlq.errors."
DISPOSITION = "_dlq.errors.disposition"
ORIGINAL_TOPIC = "_dlq.errors.original.topic"
ORIGINAL_PARTITION = "_dlq.errors.original.partition"
ORIGINAL_OFFSET = "_dlq.errors.original.offset"
GROUP_ID = "_dlq.errors.group.id"
DELIVERY_COUNT = "_dlq.errors.delivery.count"

KEY_WIDTH = 24

Headers = tuple[tuple[str, bytes | None], ...]


def dlq_topic_of(group: str) -> str:
    """The dead-letter topic a share group writes to unless configured otherwise."""
    return f"dlq.{group}"


def redrive_group_of(dlq_topic: str) -> str:
    """The classic consumer group whose committed offsets record how far redrive got."""
    return f"millpond-redrive.{dlq_topic}"


def _header_text(headers: Headers, name: str) -> str | None:
    """The last value of header `name` as UTF-8 text; None when absent, null or not UTF-8."""
    for key, value in reversed(headers):
        if key == name:
            if value is None:
                return None
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


def _header_int(headers: Headers, name: str) -> int | None:
    text = _header_text(headers, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic, where it sits there and what it carries."""

    dlq_partition: int
    dlq_offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def from_message(cls, message: Message) -> DeadLetter:
        kind, stamp = message.timestamp()
        headers = tuple(
            (name, value.encode() if isinstance(value, str) else value)
            for name, value in _header_pairs(message.headers())
        )
        return cls(
            dlq_partition=int(message.partition() or 0),
            dlq_offset=int(message.offset() or 0),
            timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else stamp,
            key=message.key(),
            value=message.value(),
            headers=headers,
        )

    @property
    def position(self) -> str:
        return f"{self.dlq_partition}@{self.dlq_offset}"

    @property
    def origin(self) -> str:
        """Where the record was consumed from, as topic:partition@offset (`-` for unknowns)."""
        parts = (self.original_topic, self.original_partition, self.original_offset)
        topic, partition, offset = ("-" if part is None else str(part) for part in parts)
        return f"{topic}:{partition}@{offset}"

    @property
    def disposition(self) -> str | None:
        return _header_text(self.headers, DISPOSITION)

    @property
    def original_topic(self) -> str | None:
        return _header_text(self.headers, ORIGINAL_TOPIC)

    @property
    def original_partition(self) -> int | None:
        return _header_int(self.headers, ORIGINAL_PARTITION)

    @property
    def original_offset(self) -> int | None:
        return _header_int(self.headers, ORIGINAL_OFFSET)

    @property
    def group_id(self) -> str | None:
        return _header_text(self.headers, GROUP_ID)

    @property
    def delivery_count(self) -> int | None:
        return _header_int(self.headers, DELIVERY_COUNT)

    @property
    def original_headers(self) -> Headers:
        """The record's own headers, in order: every `_dlq.errors.*` header removed."""
        return tuple(
            (name, value) for name, value in self.headers if not name.startswith(HEADER_PREFIX)
        )


def _header_pairs(headers: Any) -> list[tuple[str, Any]]:
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def render_bytes(data: bytes | None) -> str:
    """UTF-8 text when `data` decodes to printable text (newlines and tabs allowed), else hex.

    Returns `(null)` for None and `(empty)` for b"".
    """
    if data is None:
        return "(null)"
    if not data:
        return "(empty)"
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return f"hex:{data.hex()}"
    if text.replace("\n", "").replace("\t", "").replace("\r", "").isprintable():
        return text
    return f"hex:{data.hex()}"


def shorten(text: str, width: int = KEY_WIDTH) -> str:
    """`text` on one line, cut to `width` characters with a trailing ellipsis."""
    line = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return line if len(line) <= width else line[: width - 1] + "…"


def format_timestamp(timestamp_ms: int | None, timespec: str = "milliseconds") -> str:
    """ISO-8601 UTC, e.g. 2026-01-31T12:00:00.250Z (timespec as datetime.isoformat takes it).

    Returns `-` for an unknown timestamp.
    """
    if timestamp_ms is None or timestamp_ms < 0:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """One partition of a dead-letter topic and the redrive group's commit there (None: none)."""

    partition: int
    log_start_offset: int
    log_end_offset: int
    committed_offset: int | None

    @property
    def next_offset(self) -> int:
        """The first offset not yet redriven, within [log start, log end]."""
        committed = self.committed_offset or 0
        return min(max(committed, self.log_start_offset), self.log_end_offset)

    @property
    def waiting(self) -> int:
        """Offsets not yet redriven: dead letters waiting (an upper bound if the log has gaps)."""
        return self.log_end_offset - self.next_offset

    @property
    def redriven(self) -> int:
        """Offsets still in the log that were already redriven."""
        return self.next_offset - self.log_start_offset

    def is_redriven(self, offset: int) -> bool:
        return self.committed_offset is not None and offset < self.committed_offset


@dataclass(frozen=True, slots=True)
class Target:
    """Where one dead letter is redriven; partition None lets the producer's partitioner pick."""

    topic: str
    partition: int | None

    def __str__(self) -> str:
        return self.topic if self.partition is None else f"{self.topic}:{self.partition}"


def redrive_target(
    letter: DeadLetter, to_topic: str | None, partition_counts: Mapping[str, int]
) -> Target:
    """Where `letter` goes: `to_topic` (partition chosen by key), else its original topic.

    In its original topic it keeps its original partition while that partition exists; the key
    picks one otherwise. Raises CliError when the letter names no original topic or the cluster
    no longer has it (redriving must not auto-create topics).
    """
    if to_topic is not None:
        return Target(to_topic, None)
    topic = letter.original_topic
    if not topic:
        raise CliError(
            f"dead letter {letter.position} has no {ORIGINAL_TOPIC} header; "
            "name a topic with --to-topic"
        )
    count = partition_counts.get(topic)
    if count is None:
        raise CliError(
            f"the original topic {topic!r} of dead letter {letter.position} does not exist; "
            "create it or name another topic with --to-topic"
        )
    partition = letter.original_partition
    return Target(topic, partition if partition is not None and 0 <= partition < count else None)


def delivered_prefix(
    chunk: Sequence[DeadLetter], delivered: Collection[tuple[int, int]]
) -> tuple[dict[int, int], DeadLetter | None]:
    """What to commit after producing `chunk` (in DLQ offset order per partition).

    `delivered` holds the (partition, offset) of every dead letter whose delivery succeeded.
    Returns, per DLQ partition, the offset after the last letter of the unbroken run of
    delivered letters it starts with (partitions whose first letter failed are left out), and
    the first letter of the chunk that was not delivered (None when all were).
    """
    commits: dict[int, int] = {}
    stopped: set[int] = set()
    first_failure: DeadLetter | None = None
    for letter in chunk:
        if letter.dlq_partition in stopped:
            continue
        if (letter.dlq_partition, letter.dlq_offset) in delivered:
            commits[letter.dlq_partition] = letter.dlq_offset + 1
        else:
            stopped.add(letter.dlq_partition)
            first_failure = first_failure or letter
    return commits, first_failure


def describe_targets(to_topic: str | None, topics: Iterable[str]) -> str:
    if to_topic is not None:
        return to_topic
    names = sorted(set(topics))
    return ", ".join(names) if names else "their original topics"
