"""`millpond produce` and `millpond consume`: stdin to a topic and a topic to stdout.

They mean what kafka-console-producer and kafka-console-consumer mean: one record per line,
an optional key before a separator, acks=all; a consumer without --group reads by assignment
and commits nothing, one with --group subscribes and commits what it printed.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated
from typing import Any
from typing import BinaryIO

import typer
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import OFFSET_END
from confluent_kafka import OFFSET_STORED
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

from millpond.cli.client import DEFAULT_BOOTSTRAP
from millpond.cli.client import BootstrapServer
from millpond.cli.client import Cluster
from millpond.cli.client import describe_kafka_error
from millpond.cli.client import parse_configs
from millpond.cli.client import reports_errors
from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError

# A record that cannot be delivered in this long is reported as failed rather than retried on.
MESSAGE_TIMEOUT_MS = 30_000
_FORMAT_TOKENS = {"k", "v", "t", "p", "o", "T", "%"}


def split_key(line: bytes, separator: bytes | None, number: int) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line; the key is None when no separator is configured.

    Raises CliError naming the line when a separator is configured but the line lacks it, as
    kafka-console-producer does.
    """
    if separator is None:
        return None, line
    key, found, value = line.partition(separator)
    if not found:
        raise CliError(f"line {number} has no key separator {separator.decode()!r}")
    return key, value


def check_format(template: str) -> str:
    """Typer callback: reject unknown %-tokens before connecting."""
    index = 0
    while (index := template.find("%", index)) != -1:
        token = template[index + 1 : index + 2]
        if token not in _FORMAT_TOKENS:
            raise typer.BadParameter(
                f"unknown token %{token} in {template!r}; use %k %v %t %p %o %T or %%"
            )
        index += 2
    return template


def format_message(
    template: str,
    *,
    key: bytes | None,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
) -> bytes:
    """Render one record with kcat-style tokens: %k key, %v value, %t topic, %p partition,
    %o offset, %T timestamp (ms), %% a percent sign. A null key or value renders empty."""
    fields = {
        "k": key or b"",
        "v": value or b"",
        "t": topic.encode(),
        "p": str(partition).encode(),
        "o": str(offset).encode(),
        "T": str(timestamp_ms).encode(),
        "%": b"%",
    }
    out = bytearray()
    index = 0
    while index < len(template):
        char = template[index]
        if char == "%" and index + 1 < len(template) and template[index + 1] in fields:
            out += fields[template[index + 1]]
            index += 2
        else:
            out += char.encode()
            index += 1
    return bytes(out)


def _input_size(stream: BinaryIO) -> int | None:
    """The byte size of stdin when it is a regular file (so progress has a total), else None."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


@contextmanager
def _progress(description: str, total: int | None, enabled: bool) -> Iterator[Progress]:
    """A transient bar on stderr; drawn only when stderr is a terminal and `enabled`."""
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and total is not None and console.is_terminal),
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress


class _Deliveries:
    """Counts delivery reports; remembers the first failure to name it."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = error


def _send(producer: Producer, **record: Any) -> None:
    while True:
        try:
            producer.produce(**record)
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
        else:
            producer.poll(0)
            return


@reports_errors
def produce(
    topic: Annotated[str, typer.Argument(help="The topic to write to.")],
    key_separator: Annotated[
        str | None,
        typer.Option("--key-separator", help="Split each line into key and value at this."),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option("--partition", min=0, help="Write every record to this partition."),
    ] = None,
    properties: Annotated[
        list[str] | None,
        typer.Option("--producer-property", help="A librdkafka producer setting key=value."),
    ] = None,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Publish each line of stdin as one record (acks=all) and report how many were delivered."""
    if key_separator == "":
        raise UsageError("--key-separator cannot be empty")
    separator = key_separator.encode() if key_separator is not None else None
    extra = parse_configs(properties or [], "--producer-property")
    stdin = sys.stdin.buffer
    with Cluster(bootstrap) as cluster:
        metadata = cluster.topic(topic)
        _check_partition(topic, partition, len(metadata.partitions))
        deliveries = _Deliveries()
        producer = cluster.producer(
            **{"acks": "all", "message.timeout.ms": MESSAGE_TIMEOUT_MS, **extra}
        )
        sent = 0
        bad_line: CliError | None = None
        size = _input_size(stdin)
        with _progress(f"producing to {topic}", size, enabled=True) as progress:
            for number, line in enumerate(stdin, 1):
                try:
                    key, value = split_key(
                        line.removesuffix(b"\n").removesuffix(b"\r"), separator, number
                    )
                except CliError as error:
                    bad_line = error
                    break
                record: dict[str, Any] = {
                    "topic": topic,
                    "key": key,
                    "value": value,
                    "on_delivery": deliveries,
                }
                if partition is not None:
                    record["partition"] = partition
                _send(producer, **record)
                sent += 1
                progress.advance(progress.task_ids[0], len(line))
        undelivered = producer.flush(MESSAGE_TIMEOUT_MS / 1000 + 5)
    typer.echo(f"delivered {deliveries.delivered} of {sent} message(s) to {topic}")
    if bad_line is not None:
        raise bad_line
    if deliveries.failed or undelivered:
        reason = (
            describe_kafka_error(deliveries.first_error)
            if deliveries.first_error is not None
            else "no answer in time"
        )
        raise CliError(f"{deliveries.failed + undelivered} message(s) not delivered: {reason}")


def _check_partition(topic: str, partition: int | None, count: int) -> None:
    if partition is not None and partition >= count:
        raise CliError(f"topic {topic!r} has no partition {partition} (it has {count})")


@reports_errors
def consume(
    topic: Annotated[str, typer.Argument(help="The topic to read.")],
    group: Annotated[
        str | None,
        typer.Option("--group", help="Consume as a member of this group and commit offsets."),
    ] = None,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning",
            help="Start at the oldest record (with --group: when the group has no offset).",
        ),
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", min=1, help="Exit after this many records.")
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", min=0, help="Read only this partition.")
    ] = None,
    template: Annotated[
        str,
        typer.Option(
            "--format",
            callback=check_format,
            help="Output per record: %k key, %v value, %t topic, %p partition, %o offset, "
            "%T timestamp ms, %% percent. A newline follows each record.",
        ),
    ] = "%v",
    timeout_ms: Annotated[
        int | None,
        typer.Option("--timeout-ms", min=1, help="Exit after this long without a record."),
    ] = None,
    properties: Annotated[
        list[str] | None,
        typer.Option("--consumer-property", help="A librdkafka consumer setting key=value."),
    ] = None,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Print the records of a topic to stdout, one per line, until Ctrl-C or a limit."""
    extra = parse_configs(properties or [], "--consumer-property")
    reset = "earliest" if from_beginning else "latest"
    with Cluster(bootstrap) as cluster:
        metadata = cluster.topic(topic)
        _check_partition(topic, partition, len(metadata.partitions))
        partitions = [partition] if partition is not None else sorted(metadata.partitions)
        if group is None:
            consumer = cluster.consumer(**{"auto.offset.reset": reset, **extra})
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        else:
            consumer = cluster.consumer(
                **{
                    "group.id": group,
                    "enable.auto.commit": True,
                    "auto.offset.reset": reset,
                    **extra,
                }
            )
            if partition is None:
                consumer.subscribe([topic])
            else:
                consumer.assign([TopicPartition(topic, partition, OFFSET_STORED)])
        count = 0
        try:
            count = _print_records(consumer, topic, template, max_messages, timeout_ms)
        finally:
            if group is not None and count:
                _commit(consumer)
    typer.echo(f"processed a total of {count} message(s)", err=True)


def _print_records(
    consumer: Consumer,
    topic: str,
    template: str,
    max_messages: int | None,
    timeout_ms: int | None,
) -> int:
    """Write records to stdout until the limit, the idle timeout, Ctrl-C or a closed pipe.

    Returns how many were written.
    """
    out = sys.stdout.buffer
    count = 0
    idle_since = time.monotonic()
    show_bar = max_messages is not None and not out.isatty()
    try:
        with _progress(f"consuming {topic}", max_messages, show_bar) as progress:
            while max_messages is None or count < max_messages:
                if timeout_ms is not None and time.monotonic() - idle_since > timeout_ms / 1000:
                    break
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise CliError(f"consuming {topic!r}: {describe_kafka_error(error)}")
                    continue  # transient (broker restarting, partition EOF): librdkafka retries
                idle_since = time.monotonic()
                out.write(
                    format_message(
                        template,
                        key=message.key(),
                        value=message.value(),
                        topic=str(message.topic()),
                        partition=int(message.partition() or 0),
                        offset=int(message.offset() or 0),
                        timestamp_ms=message.timestamp()[1],
                    )
                    + b"\n"
                )
                out.flush()
                count += 1
                progress.advance(progress.task_ids[0])
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's final
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return count


def _commit(consumer: Consumer) -> None:
    """Commit what was printed; nothing new to commit is not an error."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        if error.args[0].code() != KafkaError._NO_OFFSET:
            raise
