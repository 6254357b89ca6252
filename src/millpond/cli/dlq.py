"""`millpond dlq …`: list, show and redrive the dead letters of a share group.

A share group G dead-letters into the topic `dlq.G` (or the topic its
`errors.deadletterqueue.topic.name` names; `--topic` reads that one). A dead letter keeps the
original record's key, value and headers and adds UTF-8 headers saying where it came from:

    _dlq.errors.disposition          MAX_DELIVERY_ATTEMPTS_REACHED or CLIENT_REJECTED
    _dlq.errors.original.topic       the topic it was consumed from
    _dlq.errors.original.partition   decimal
    _dlq.errors.original.offset      decimal
    _dlq.errors.group.id             the share group
    _dlq.errors.delivery.count       decimal

Its timestamp is when it was dead-lettered.

`redrive` republishes dead letters, in DLQ offset order, to their original topic and partition
(or to `--to-topic`) without the `_dlq.errors.*` headers, with an idempotent acks=all producer.
How far it got is the committed offset, per DLQ partition, of the classic consumer group
`millpond-redrive.<DLQ topic>`, committed standalone (assign, never subscribe), so any Kafka
tool can read or reset it, and `list` counts a dead letter redriven when its offset is below
that commit. Records go out in chunks: produce a chunk, flush, check every delivery report,
then commit synchronously the offset after the last delivered record of each partition. A
rerun starts at the commit, so a record whose chunk was committed is never redriven again. The
one window is a crash (or a failed commit) after a chunk was delivered and before its commit
was stored: the next run sends that chunk again. A failed delivery stops the run after
committing only the unbroken run of delivered records before it, so the records of that DLQ
partition after it, delivered or not, go out again on the next run.

Every read stops at the high watermark taken when the command starts, so a command ends even
while the broker keeps dead-lettering.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer
from confluent_kafka import Consumer
from confluent_kafka import KafkaError
from confluent_kafka import KafkaException
from confluent_kafka import Message
from confluent_kafka import Producer
from confluent_kafka import TopicPartition
from rich.console import Console
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TimeRemainingColumn
from rich.table import Column
from rich.table import Table
from rich.text import Text

from millpond.cli.client import DEFAULT_BOOTSTRAP
from millpond.cli.client import BootstrapServer
from millpond.cli.client import Cluster
from millpond.cli.client import describe_kafka_error
from millpond.cli.client import reports_errors
from millpond.cli.dead_letters import DeadLetter
from millpond.cli.dead_letters import PartitionProgress
from millpond.cli.dead_letters import Target
from millpond.cli.dead_letters import delivered_prefix
from millpond.cli.dead_letters import describe_targets
from millpond.cli.dead_letters import dlq_topic_of
from millpond.cli.dead_letters import format_timestamp
from millpond.cli.dead_letters import redrive_group_of
from millpond.cli.dead_letters import redrive_target
from millpond.cli.dead_letters import render_bytes
from millpond.cli.dead_letters import shorten
from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError

app = typer.Typer(
    help="List, show and redrive the dead letters of a share group.",
    no_args_is_help=True,
    add_completion=False,
)

# Records produced between two progress commits: a crash resends at most this many.
REDRIVE_CHUNK = 100
# A record that cannot be delivered in this long is reported as failed rather than retried on.
MESSAGE_TIMEOUT_MS = 30_000


@dataclass(frozen=True, slots=True)
class _DeadLetterTopic:
    name: str
    partitions: list[PartitionProgress]
    partition_counts: dict[str, int]  # every topic of the cluster, for redrive targets


def _topic_name(group: str, topic: str | None) -> str:
    name = topic if topic is not None else dlq_topic_of(group)
    if not name.strip():
        raise UsageError("the dead-letter topic name cannot be empty")
    return name


def _missing(group: str, topic: str) -> str:
    return f"no dead letters for group {group} (topic {topic} does not exist)"


def _open(cluster: Cluster, topic: str) -> _DeadLetterTopic | None:
    """The dead-letter topic's partitions and redrive progress; None when it does not exist."""
    topics = cluster.metadata().topics
    counts = {
        name: len(meta.partitions)
        for name, meta in topics.items()
        if meta.error is None and meta.partitions
    }
    meta = topics.get(topic)
    if meta is None or (
        meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    ):
        return None
    if meta.error is not None:
        raise CliError(f"topic {topic!r}: {describe_kafka_error(meta.error)}")
    numbers = sorted(meta.partitions)
    committer = cluster.consumer(**{"group.id": redrive_group_of(topic)})
    committed = {
        tp.partition: tp.offset
        for tp in committer.committed(
            [TopicPartition(topic, p) for p in numbers], timeout=cluster.timeout
        )
        if tp.error is None and tp.offset >= 0
    }
    reader = cluster.consumer()
    partitions = []
    for number in numbers:
        low, high = reader.get_watermark_offsets(
            TopicPartition(topic, number), timeout=cluster.timeout
        )
        partitions.append(PartitionProgress(number, int(low), int(high), committed.get(number)))
    return _DeadLetterTopic(topic, partitions, counts)


def _reader(cluster: Cluster) -> Consumer:
    return cluster.consumer(**{"auto.offset.reset": "earliest", "enable.partition.eof": True})


def _read_partition(
    consumer: Consumer, topic: str, partition: int, start: int, end: int, timeout: float
) -> Iterator[DeadLetter]:
    """The dead letters of one partition from `start` up to (not including) `end`.

    Raises CliError when no record arrives for `timeout` seconds or the partition goes away.
    """
    if start >= end:
        return
    consumer.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + timeout
    while True:
        message = consumer.poll(0.2)
        if message is None:
            if time.monotonic() > deadline:
                raise CliError(
                    f"reading {topic}:{partition}: no record arrived within {timeout:g}s"
                )
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                break
            if error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise CliError(f"reading {topic}:{partition}: {describe_kafka_error(error)}")
            continue  # transient: librdkafka retries
        deadline = time.monotonic() + timeout
        offset = int(message.offset() or 0)
        if offset >= end:
            break
        yield DeadLetter.from_message(message)
        if offset + 1 >= end:
            break
    consumer.unassign()


def _letters(
    consumer: Consumer, dlq: _DeadLetterTopic, *, include_redriven: bool, timeout: float
) -> Iterator[DeadLetter]:
    """Dead letters partition by partition, each partition in offset order."""
    for part in dlq.partitions:
        start = part.log_start_offset if include_redriven else part.next_offset
        yield from _read_partition(
            consumer, dlq.name, part.partition, start, part.log_end_offset, timeout
        )


def _fixed(*headers: str) -> list[str | Column]:
    """Columns rich must not cut short on a narrow terminal: positions and times."""
    return [Column(header, no_wrap=True, min_width=len(header)) for header in headers]


def _key_cell(letter: DeadLetter) -> Text:
    return Text(shorten(render_bytes(letter.key)))


@app.command("list")
@reports_errors
def list_dead_letters(
    group: Annotated[str, typer.Argument(help="The share group whose dead letters to list.")],
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="The dead-letter topic (default dlq.GROUP)."),
    ] = None,
    include_redriven: Annotated[
        bool, typer.Option("--all", help="Include dead letters already redriven (marked).")
    ] = False,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """One row per dead letter not yet redriven, then how many there are."""
    name = _topic_name(group, topic)
    with Cluster(bootstrap) as cluster:
        dlq = _open(cluster, name)
        if dlq is None:
            typer.echo(_missing(group, name))
            return
        letters = list(
            _letters(
                _reader(cluster), dlq, include_redriven=include_redriven, timeout=cluster.timeout
            )
        )
    progress = {part.partition: part for part in dlq.partitions}
    columns: list[str | Column] = [*_fixed("dlq", "time (UTC)", "original"), "disposition"]
    columns += ["count", "key", *(_fixed("redriven") if include_redriven else [])]
    table = Table(*columns, title=f"dead letters in {name}")
    redriven = 0
    for letter in letters:
        done = progress[letter.dlq_partition].is_redriven(letter.dlq_offset)
        redriven += done
        cells: list[str | Text] = [
            letter.position,
            format_timestamp(letter.timestamp_ms, timespec="seconds"),
            Text(letter.origin),
            Text(letter.disposition or "-"),
            "-" if letter.delivery_count is None else str(letter.delivery_count),
            _key_cell(letter),
        ]
        if include_redriven:
            cells.append("yes" if done else "no")
        table.add_row(*cells)
    if letters:
        Console().print(table)
    waiting = len(letters) - redriven
    if not include_redriven:
        redriven = sum(part.redriven for part in dlq.partitions)
    typer.echo(f"{waiting} dead letter(s) waiting in {name}, {redriven} already redriven")


def _show_partition(dlq: _DeadLetterTopic, partition: int | None) -> int:
    if partition is not None:
        return partition
    if len(dlq.partitions) == 1:
        return dlq.partitions[0].partition
    raise UsageError(
        f"{dlq.name} has {len(dlq.partitions)} partitions: give --partition with --offset"
    )


def _find(cluster: Cluster, dlq: _DeadLetterTopic, partition: int, offset: int) -> DeadLetter:
    """The dead letter at `offset` of `partition`; CliError saying what exists if there is none."""
    part = next((p for p in dlq.partitions if p.partition == partition), None)
    if part is None:
        raise CliError(f"{dlq.name} has no partition {partition}")
    where = f"{dlq.name}:{partition}"
    if not part.log_start_offset <= offset < part.log_end_offset:
        held = (
            f"it holds offsets {part.log_start_offset} to {part.log_end_offset - 1}"
            if part.log_end_offset > part.log_start_offset
            else "it is empty"
        )
        raise CliError(f"no dead letter at offset {offset} in {where} ({held})")
    reader = _reader(cluster)
    found = next(
        _read_partition(reader, dlq.name, partition, offset, offset + 1, cluster.timeout), None
    )
    if found is None or found.dlq_offset != offset:
        raise CliError(f"no dead letter at offset {offset} in {where}")
    return found


def _oldest_waiting(
    cluster: Cluster, dlq: _DeadLetterTopic, partition: int | None
) -> DeadLetter | None:
    """The earliest dead-lettered record not yet redriven (of one partition, if given)."""
    parts = [p for p in dlq.partitions if partition is None or p.partition == partition]
    if partition is not None and not parts:
        raise CliError(f"{dlq.name} has no partition {partition}")
    reader = _reader(cluster)
    firsts = []
    for part in parts:
        first = next(
            _read_partition(
                reader,
                dlq.name,
                part.partition,
                part.next_offset,
                part.log_end_offset,
                cluster.timeout,
            ),
            None,
        )
        if first is not None:
            firsts.append(first)
    if not firsts:
        return None
    return min(firsts, key=lambda letter: (letter.timestamp_ms or 0, letter.dlq_partition))


def describe_letter(topic: str, letter: DeadLetter, redriven: bool) -> list[str]:
    """The lines `show` prints for one dead letter."""
    status = "already redriven" if redriven else "waiting to be redriven"
    lines = [
        f"dead letter {topic}:{letter.position} ({status})",
        f"dead-lettered at  {format_timestamp(letter.timestamp_ms)}",
        f"original          {letter.origin}",
        f"disposition       {letter.disposition or '-'}",
        f"delivery count    {'-' if letter.delivery_count is None else letter.delivery_count}",
        f"group             {letter.group_id or '-'}",
        f"headers ({len(letter.headers)}):",
    ]
    lines += [f"  {name}: {render_bytes(value)}" for name, value in letter.headers]
    for label, data in (("key", letter.key), ("value", letter.value)):
        size = "null" if data is None else f"{len(data)} bytes"
        lines.append(f"{label} ({size}): {render_bytes(data)}")
    return lines


@app.command()
@reports_errors
def show(
    group: Annotated[str, typer.Argument(help="The share group whose dead letter to show.")],
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="The dead-letter topic (default dlq.GROUP)."),
    ] = None,
    offset: Annotated[
        int | None,
        typer.Option("--offset", min=0, help="The dead letter at this DLQ offset."),
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", min=0, help="The DLQ partition.")
    ] = None,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Print one dead letter in full (default: the oldest not yet redriven)."""
    name = _topic_name(group, topic)
    with Cluster(bootstrap) as cluster:
        dlq = _open(cluster, name)
        if dlq is None:
            if offset is not None:
                raise CliError(_missing(group, name))
            typer.echo(_missing(group, name))
            return
        if offset is not None:
            letter: DeadLetter | None = _find(cluster, dlq, _show_partition(dlq, partition), offset)
        else:
            letter = _oldest_waiting(cluster, dlq, partition)
    if letter is None:
        typer.echo(f"no dead letters waiting in {name}")
        return
    progress = next(p for p in dlq.partitions if p.partition == letter.dlq_partition)
    for line in describe_letter(name, letter, progress.is_redriven(letter.dlq_offset)):
        typer.echo(line)


def _plan(
    letters: Iterator[DeadLetter],
    to_topic: str | None,
    partition_counts: Mapping[str, int],
    limit: int | None,
) -> Iterator[tuple[DeadLetter, Target]]:
    """Each dead letter to redrive with its target; raises CliError at one that has none."""
    for letter in itertools.islice(letters, limit):
        yield letter, redrive_target(letter, to_topic, partition_counts)


def _take(
    plan: Iterator[tuple[DeadLetter, Target]], size: int
) -> tuple[list[tuple[DeadLetter, Target]], CliError | None]:
    """Up to `size` steps of the plan, and the error that cut it short (None if none did)."""
    chunk: list[tuple[DeadLetter, Target]] = []
    try:
        for step in plan:
            chunk.append(step)
            if len(chunk) == size:
                break
    except CliError as error:
        return chunk, error
    return chunk, None


class _Reports:
    """Delivery reports of one chunk, by the (partition, offset) of the dead letter sent."""

    def __init__(self) -> None:
        self.errors: dict[tuple[int, int], KafkaError | None] = {}

    def for_letter(self, letter: DeadLetter) -> Callable[[KafkaError | None, Message], None]:
        where = (letter.dlq_partition, letter.dlq_offset)

        def report(error: KafkaError | None, _message: Message) -> None:
            self.errors[where] = error

        return report

    def delivered(self) -> set[tuple[int, int]]:
        return {where for where, error in self.errors.items() if error is None}


def _send(producer: Producer, letter: DeadLetter, target: Target, reports: _Reports) -> bool:
    """Queue one dead letter; False (its error in `reports`) when the producer refused it."""
    while True:
        try:
            producer.produce(
                target.topic,
                value=letter.value,
                key=letter.key,
                partition=-1 if target.partition is None else target.partition,
                headers=list(letter.original_headers) or None,
                on_delivery=reports.for_letter(letter),
            )
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
        except KafkaException as error:  # refused before sending, e.g. larger than allowed
            reports.errors[letter.dlq_partition, letter.dlq_offset] = error.args[0]
            return False
        else:
            producer.poll(0)
            return True


def _commit(consumer: Consumer, topic: str, commits: Mapping[int, int]) -> None:
    """Store redrive progress synchronously; CliError when the broker refuses it."""
    if not commits:
        return
    group = redrive_group_of(topic)
    offsets = [TopicPartition(topic, p, offset) for p, offset in sorted(commits.items())]
    try:
        stored = consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as error:
        reason = describe_kafka_error(error.args[0])
        raise CliError(
            f"committing redrive progress (group {group}): {reason}; "
            "the last chunk will be redriven again"
        ) from None
    for tp in stored:
        if tp.error is not None:
            raise CliError(
                f"committing redrive progress of {topic}:{tp.partition} (group {group}): "
                f"{describe_kafka_error(tp.error)}; the last chunk will be redriven again"
            )


@contextmanager
def _progress_bar(description: str, total: int) -> Iterator[Progress]:
    """A transient bar on stderr, drawn only when stderr is a terminal."""
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress


def _print_plan(name: str, steps: Sequence[tuple[DeadLetter, Target]]) -> None:
    table = Table(
        *_fixed("dlq", "original"),
        "disposition",
        "key",
        *_fixed("redrive to"),
        title=f"would redrive from {name}",
    )
    for letter, target in steps:
        table.add_row(
            letter.position,
            Text(letter.origin),
            Text(letter.disposition or "-"),
            _key_cell(letter),
            Text(str(target) if target.partition is not None else f"{target} (by key)"),
        )
    if steps:
        Console().print(table)


def _redrive(
    cluster: Cluster, dlq: _DeadLetterTopic, plan: Iterator[tuple[DeadLetter, Target]], total: int
) -> tuple[int, set[str]]:
    """Produce the plan chunk by chunk, committing after each; returns (count, topics).

    Raises CliError (after committing what was delivered) when a delivery fails or the plan
    meets a dead letter it cannot redrive.
    """
    committer = cluster.consumer(**{"group.id": redrive_group_of(dlq.name)})
    producer = cluster.producer(
        **{"enable.idempotence": True, "acks": "all", "message.timeout.ms": MESSAGE_TIMEOUT_MS}
    )
    count = 0
    topics: set[str] = set()
    with _progress_bar(f"redriving {dlq.name}", total) as progress:
        while True:
            chunk, stop = _take(plan, REDRIVE_CHUNK)
            if chunk:
                reports = _Reports()
                for letter, target in chunk:
                    if not _send(producer, letter, target, reports):
                        break
                if producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 5):
                    producer.purge()
                    producer.flush(0)
                letters = [letter for letter, _ in chunk]
                commits, failed = delivered_prefix(letters, reports.delivered())
                _commit(committer, dlq.name, commits)
                done = [
                    (letter, target)
                    for letter, target in chunk
                    if letter.dlq_offset < commits.get(letter.dlq_partition, -1)
                ]
                count += len(done)
                topics.update(target.topic for _, target in done)
                progress.advance(progress.task_ids[0], len(done))
                if failed is not None:
                    error = reports.errors.get((failed.dlq_partition, failed.dlq_offset))
                    reason = "no answer in time" if error is None else describe_kafka_error(error)
                    where = next(target for letter, target in chunk if letter is failed)
                    stop = CliError(
                        f"dead letter {dlq.name}:{failed.position} was not delivered to {where}: "
                        f"{reason}; redrove {count} dead letter(s) before it and committed that"
                    )
            if stop is not None:
                raise stop
            if len(chunk) < REDRIVE_CHUNK:
                return count, topics


@app.command()
@reports_errors
def redrive(
    group: Annotated[str, typer.Argument(help="The share group whose dead letters to redrive.")],
    to_topic: Annotated[
        str | None,
        typer.Option("--to-topic", help="Write here instead of each record's original topic."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--max", min=1, help="Redrive at most this many.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be redriven; change nothing.")
    ] = False,
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="The dead-letter topic (default dlq.GROUP)."),
    ] = None,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Republish dead letters not yet redriven to their original topic, oldest offset first.

    Keeps key, value and headers minus _dlq.errors.*; a rerun goes on where this one stopped.
    """
    name = _topic_name(group, topic)
    if to_topic is not None and to_topic == name:
        raise UsageError("--to-topic cannot be the dead-letter topic itself")
    with Cluster(bootstrap) as cluster:
        dlq = _open(cluster, name)
        if dlq is None:
            typer.echo(_missing(group, name))
            return
        if to_topic is not None:
            cluster.topic(to_topic)
        waiting = sum(part.waiting for part in dlq.partitions)
        total = waiting if limit is None else min(waiting, limit)
        letters = _letters(_reader(cluster), dlq, include_redriven=False, timeout=cluster.timeout)
        plan = _plan(letters, to_topic, dlq.partition_counts, limit)
        if dry_run:
            steps, stop = _take(plan, total + 1)
            _print_plan(name, steps)
            typer.echo(
                f"dry run: would redrive {len(steps)} dead letter(s) from {name} to "
                f"{describe_targets(to_topic, (target.topic for _, target in steps))}; "
                "nothing produced or committed"
            )
            if stop is not None:
                raise stop
            return
        if total == 0:
            typer.echo(f"redrove 0 dead letter(s) from {name}: none waiting")
            return
        count, topics = _redrive(cluster, dlq, plan, total)
    typer.echo(
        f"redrove {count} dead letter(s) from {name} to {describe_targets(to_topic, topics)}"
    )
