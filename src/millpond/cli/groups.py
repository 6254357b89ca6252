"""`millpond groups …`: list and describe consumer groups, show lag, reset committed offsets.

The meaning follows kafka-consumer-groups: lag is the log end offset minus the committed
offset, and offsets are reset only while the group has no active members (state Empty or
Dead), as a dry run unless --execute is given.

Share groups (KIP-932) are listed and described too (share_groups.py).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated
from typing import Any

import typer
from confluent_kafka import ConsumerGroupState
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import KafkaError
from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition
from rich.console import Console
from rich.table import Table

from millpond.cli.client import DEFAULT_BOOTSTRAP
from millpond.cli.client import BootstrapServer
from millpond.cli.client import Cluster
from millpond.cli.client import describe_kafka_error
from millpond.cli.client import reports_errors
from millpond.cli.errors import CliError
from millpond.cli.errors import UsageError
from millpond.cli.offsets import PartitionOffsets
from millpond.cli.offsets import PlannedReset
from millpond.cli.offsets import ResetStrategy
from millpond.cli.offsets import ShiftBy
from millpond.cli.offsets import ToEarliest
from millpond.cli.offsets import ToLatest
from millpond.cli.offsets import ToOffset
from millpond.cli.offsets import ToTimestamp
from millpond.cli.offsets import format_age
from millpond.cli.offsets import lag_messages
from millpond.cli.offsets import parse_datetime
from millpond.cli.offsets import parse_duration
from millpond.cli.offsets import parse_topic_partitions
from millpond.cli.offsets import plan_reset
from millpond.cli.offsets import to_millis
from millpond.cli.share_groups import DEFAULT_HTTP_SERVER
from millpond.cli.share_groups import HttpServer
from millpond.cli.share_groups import find_share_group
from millpond.cli.share_groups import list_share_groups
from millpond.cli.share_groups import print_share_group

app = typer.Typer(
    help="List and describe consumer groups; reset their offsets.",
    no_args_is_help=True,
    add_completion=False,
)

# Kafka resets offsets only for a group without members: Empty, or Dead (never seen).
INACTIVE_STATES = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}


def _state_name(state: Any) -> str:
    name = getattr(state, "name", str(state))
    return "".join(part.capitalize() for part in str(name).split("_"))


def _type_name(group_type: Any) -> str:
    return str(getattr(group_type, "name", group_type or "-")).lower()


def _groups_unsupported(cluster: Cluster, error: KafkaError) -> CliError:
    if error.code() == KafkaError._UNSUPPORTED_FEATURE:
        return CliError(f"the broker at {cluster.bootstrap} does not support consumer groups")
    return CliError(f"listing groups: {describe_kafka_error(error)}")


def _list_group_ids(cluster: Cluster) -> list[str]:
    cluster.metadata()
    listing = cluster.result(
        cluster.admin.list_consumer_groups(request_timeout=cluster.timeout), "listing groups"
    )
    errors = [
        error.args[0] if isinstance(error, KafkaException) else error for error in listing.errors
    ]
    if errors and not listing.valid:
        raise _groups_unsupported(cluster, errors[0])
    return sorted(group.group_id for group in listing.valid)


def _describe_groups(cluster: Cluster, group_ids: list[str]) -> dict[str, Any]:
    if not group_ids:
        return {}
    futures = cluster.admin.describe_consumer_groups(group_ids, request_timeout=cluster.timeout)
    return {
        group_id: cluster.result(future, f"describing group {group_id!r}")
        for group_id, future in futures.items()
    }


@app.command("list")
@reports_errors
def list_groups(bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP) -> None:
    """List the consumer and share groups with their state, type and partition assignor."""
    with Cluster(bootstrap) as cluster:
        share_groups = list_share_groups(cluster)
        group_ids = [g for g in _list_group_ids(cluster) if g not in share_groups]
        descriptions = _describe_groups(cluster, group_ids)
    rows = [
        (
            group_id,
            _state_name(description.state),
            _type_name(getattr(description, "type", None)),
            description.partition_assignor or "-",
        )
        for group_id, description in descriptions.items()
    ]
    rows += [
        (group_id, state, "share", assignor) for group_id, (state, assignor) in share_groups.items()
    ]
    table = Table("group", "state", "type", "assignor")
    for row in sorted(rows):
        table.add_row(*row)
    Console().print(table)


def _committed_offsets(cluster: Cluster, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets; partitions with none are left out."""
    future = cluster.admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], request_timeout=cluster.timeout
    )[group]
    result = cluster.result(future, f"fetching committed offsets of group {group!r}")
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions or []
        if tp.error is None and tp.offset >= 0
    }


def _watermarks(
    cluster: Cluster, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, int]]:
    """(log start, log end) per partition; partitions whose offsets cannot be read are left out."""
    consumer = cluster.consumer()
    marks = {}
    for topic, partition in partitions:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=cluster.timeout
            )
        except KafkaException:
            continue
        marks[topic, partition] = (int(low), int(high))
    return marks


def _record_timestamps(
    cluster: Cluster, positions: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """Timestamp (ms) of the record at each position, read by an assign-only consumer."""
    if not positions:
        return {}
    consumer = cluster.consumer(**{"auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in positions.items()])
    found: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + cluster.timeout
    while len(found) < len(positions) and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        key = (str(message.topic()), int(message.partition() or 0))
        if key in positions and key not in found:
            found[key] = message.timestamp()[1]
            consumer.incremental_unassign([TopicPartition(*key)])
    return found


@dataclass(frozen=True, slots=True)
class _Member:
    member_id: str
    client_id: str
    host: str
    partitions: list[tuple[str, int]]


def _members(description: Any) -> list[_Member]:
    members = []
    for member in description.members or []:
        assignment = member.assignment.topic_partitions if member.assignment else []
        members.append(
            _Member(
                member_id=member.member_id,
                client_id=member.client_id,
                host=member.host,
                partitions=sorted((tp.topic, tp.partition) for tp in assignment),
            )
        )
    return members


def _describe_one(cluster: Cluster, group: str) -> Any:
    return _describe_groups(cluster, [group])[group]


def _check_known(cluster: Cluster, group: str, description: Any, committed: dict[Any, int]) -> None:
    """CliError when the cluster knows nothing of the group.

    Kafka answers DescribeGroups for an unknown group with state Dead; some brokers (tansu)
    answer Empty, so an Empty group with no members, no offsets and no ListGroups entry is
    unknown too.
    """
    if committed or description.members:
        return
    if description.state == ConsumerGroupState.DEAD:
        raise CliError(f"unknown group {group!r}")
    if description.state not in {ConsumerGroupState.EMPTY, ConsumerGroupState.UNKNOWN}:
        return  # rebalancing or stable: it has members even if the broker did not list them
    if group not in _list_group_ids(cluster):
        raise CliError(f"unknown group {group!r}")


@app.command()
@reports_errors
def describe(
    group: Annotated[str, typer.Argument(help="The consumer or share group to describe.")],
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
    http_server: HttpServer = DEFAULT_HTTP_SERVER,
) -> None:
    """State, members and per-partition offsets and lag of a group.

    For a consumer group, lag in messages and in time; for a share group, its start offset and
    lag, and (from Millpond's /metrics) records in flight, available and archived.
    """
    with Cluster(bootstrap) as cluster:
        cluster.metadata()
        share = find_share_group(cluster, group)
        if share is None:
            _describe_consumer_group(cluster, group)
            return
    print_share_group(group, share, http_server)


def _describe_consumer_group(cluster: Cluster, group: str) -> None:
    """The classic describe: members, committed and end offsets, lag in messages and time."""
    description = _describe_one(cluster, group)
    committed = _committed_offsets(cluster, group)
    _check_known(cluster, group, description, committed)
    members = _members(description)
    owner = {tp: member for member in members for tp in member.partitions}
    partitions = sorted(set(committed) | set(owner))
    marks = _watermarks(cluster, partitions)
    behind = {
        tp: max(committed[tp], marks[tp][0])
        for tp in partitions
        if tp in committed and tp in marks and committed[tp] < marks[tp][1]
    }
    timestamps = _record_timestamps(cluster, behind)
    now_ms = time.time() * 1000

    console = Console()
    coordinator = getattr(description, "coordinator", None)
    console.print(
        f"[bold]{group}[/bold]  state: {_state_name(description.state)}  "
        f"type: {_type_name(getattr(description, 'type', None))}  "
        f"assignor: {description.partition_assignor or '-'}  "
        f"coordinator: {coordinator.id if coordinator is not None else '-'}  "
        f"members: {len(members)}"
    )
    if not members and description.state not in INACTIVE_STATES:
        console.print("(the broker reported the group active but listed no members)")
    if members:
        table = Table("member", "client id", "host", "assigned partitions")
        for member in members:
            table.add_row(
                member.member_id,
                member.client_id,
                member.host,
                ", ".join(f"{t}:{p}" for t, p in member.partitions) or "-",
            )
        console.print(table)
    table = Table("topic", "partition", "committed", "log end", "lag", "lag time", "client id")
    for tp in partitions:
        log_end = marks[tp][1] if tp in marks else None
        offset = committed.get(tp)
        lag = lag_messages(offset, log_end) if log_end is not None else None
        if not lag:  # caught up, or nothing committed to measure from
            age = "-"
        elif tp in timestamps:
            age = format_age((now_ms - timestamps[tp]) / 1000)
        else:
            age = "?"
        holder = owner.get(tp)
        table.add_row(
            tp[0],
            str(tp[1]),
            "-" if offset is None else str(offset),
            "-" if log_end is None else str(log_end),
            "-" if lag is None else str(lag),
            age,
            holder.client_id if holder is not None else "-",
        )
    if partitions:
        console.print(table)
    else:
        console.print("no committed offsets and no assigned partitions")


def _strategy(
    to_earliest: bool,
    to_latest: bool,
    to_datetime: str | None,
    by_duration: str | None,
    shift_by: int | None,
    to_offset: int | None,
    now: datetime.datetime,
) -> ResetStrategy:
    """The one reset target given; UsageError for none, several, or a malformed one."""
    given = [
        name
        for name, value in (
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-datetime", to_datetime is not None),
            ("--by-duration", by_duration is not None),
            ("--shift-by", shift_by is not None),
            ("--to-offset", to_offset is not None),
        )
        if value
    ]
    if len(given) != 1:
        names = "--to-earliest, --to-latest, --to-datetime, --by-duration, --shift-by, --to-offset"
        found = f" (got {', '.join(given)})" if given else ""
        raise UsageError(f"give exactly one of {names}{found}")
    if to_earliest:
        return ToEarliest()
    if to_latest:
        return ToLatest()
    if to_datetime is not None:
        return ToTimestamp(to_millis(parse_datetime(to_datetime)))
    if by_duration is not None:
        return ToTimestamp(to_millis(now - parse_duration(by_duration)))
    if shift_by is not None:
        return ShiftBy(shift_by)
    assert to_offset is not None
    return ToOffset(to_offset)


def _target_partitions(
    cluster: Cluster, group: str, topics: list[str], committed: dict[tuple[str, int], int]
) -> list[tuple[str, int]]:
    if not topics:
        if not committed:
            raise CliError(f"group {group!r} has no committed offsets; name topics with --topic")
        return sorted(committed)
    chosen: set[tuple[str, int]] = set()
    for spec in topics:
        topic, wanted = parse_topic_partitions(spec)
        existing = sorted(cluster.topic(topic).partitions)
        for partition in wanted if wanted is not None else existing:
            if partition not in existing:
                raise CliError(f"topic {topic!r} has no partition {partition}")
            chosen.add((topic, partition))
    return sorted(chosen)


def _offsets_for_time(
    cluster: Cluster, partitions: list[tuple[str, int]], timestamp_ms: int
) -> dict[tuple[str, int], int]:
    consumer = cluster.consumer()
    found = consumer.offsets_for_times(
        [TopicPartition(t, p, timestamp_ms) for t, p in partitions], timeout=cluster.timeout
    )
    for tp in found:
        if tp.error is not None:
            raise CliError(
                f"looking up offsets by time in {tp.topic}:{tp.partition}: "
                f"{describe_kafka_error(tp.error)}"
            )
    return {(tp.topic, tp.partition): tp.offset for tp in found}


def _print_plan(group: str, plan: list[PlannedReset]) -> None:
    table = Table("topic", "partition", "current offset", "new offset", title=f"group {group}")
    for row in plan:
        current = "-" if row.current_offset is None else str(row.current_offset)
        table.add_row(row.topic, str(row.partition), current, str(row.new_offset))
    Console().print(table)


@app.command("reset-offsets")
@reports_errors
def reset_offsets(
    group: Annotated[str, typer.Option("--group", help="The consumer group.")],
    topics: Annotated[
        list[str] | None,
        typer.Option("--topic", help="TOPIC or TOPIC:P,P… to reset (repeatable)."),
    ] = None,
    all_topics: Annotated[
        bool, typer.Option("--all-topics", help="Every partition the group has offsets for.")
    ] = False,
    to_earliest: Annotated[bool, typer.Option("--to-earliest")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest")] = False,
    to_datetime: Annotated[
        str | None,
        typer.Option("--to-datetime", help="ISO-8601 time; first offset at or after it."),
    ] = None,
    by_duration: Annotated[
        str | None, typer.Option("--by-duration", help="PnDTnHnMnS: now minus this duration.")
    ] = None,
    shift_by: Annotated[int | None, typer.Option("--shift-by", help="Move by N (±).")] = None,
    to_offset: Annotated[int | None, typer.Option("--to-offset", help="Set to offset N.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only print the plan (the default).")
    ] = False,
    execute: Annotated[bool, typer.Option("--execute", help="Commit the new offsets.")] = False,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Plan (and with --execute, commit) new offsets for a group that has no active members.

    New offsets are kept within each partition's [log start, log end].
    """
    if dry_run and execute:
        raise UsageError("give --dry-run or --execute, not both")
    if bool(topics) == all_topics:
        raise UsageError("give --topic or --all-topics (exactly one)")
    strategy = _strategy(
        to_earliest,
        to_latest,
        to_datetime,
        by_duration,
        shift_by,
        to_offset,
        datetime.datetime.now(datetime.UTC),
    )
    for spec in topics or []:
        parse_topic_partitions(spec)
    with Cluster(bootstrap) as cluster:
        cluster.metadata()
        description = _describe_one(cluster, group)
        if description.state not in INACTIVE_STATES:
            raise CliError(
                f"offsets of group {group!r} can only be reset while it is inactive, but its "
                f"state is {_state_name(description.state)} with "
                f"{len(description.members or [])} member(s); stop its consumers first"
            )
        committed = _committed_offsets(cluster, group)
        partitions = _target_partitions(cluster, group, topics or [], committed)
        marks = _watermarks(cluster, partitions)
        missing = [tp for tp in partitions if tp not in marks]
        if missing:
            topic, partition = missing[0]
            raise CliError(f"cannot read the offsets of {topic}:{partition}")
        time_offsets = (
            _offsets_for_time(cluster, partitions, strategy.timestamp_ms)
            if isinstance(strategy, ToTimestamp)
            else None
        )
        plan = plan_reset(
            [
                PartitionOffsets(t, p, committed.get((t, p)), marks[t, p][0], marks[t, p][1])
                for t, p in partitions
            ],
            strategy,
            time_offsets,
        )
        _print_plan(group, plan)
        if not execute:
            typer.echo("dry run: nothing changed; add --execute to commit these offsets")
            return
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(row.topic, row.partition, row.new_offset) for row in plan]
        )
        future = cluster.admin.alter_consumer_group_offsets(
            [request], request_timeout=cluster.timeout
        )[group]
        result = cluster.result(future, f"committing new offsets of group {group!r}")
        failed = [tp for tp in result.topic_partitions or [] if tp.error is not None]
        if failed:
            first = failed[0]
            raise CliError(
                f"committing {first.topic}:{first.partition} for group {group!r}: "
                f"{describe_kafka_error(first.error)}"
            )
    typer.echo(f"committed new offsets for {len(plan)} partition(s) of group {group}")
