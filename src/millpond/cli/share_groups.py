"""Share groups (KIP-932) for `millpond groups list/describe`.

confluent-kafka has no admin calls for them, so those requests go through `kafka_wire`; a
cluster that does not serve them simply has none. Millpond's own per-partition figures
(records in flight, available, archived) are not in the Kafka protocol, so `describe` reads
them from the broker's HTTP /metrics.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from http.client import HTTPConnection
from http.client import HTTPException
from typing import Annotated

import typer
from kio.schema.describe_share_group_offsets.v1.request import DescribeShareGroupOffsetsRequest
from kio.schema.describe_share_group_offsets.v1.request import DescribeShareGroupOffsetsRequestGroup
from kio.schema.describe_share_group_offsets.v1.response import DescribeShareGroupOffsetsResponse
from kio.schema.errors import ErrorCode
from kio.schema.list_groups.v5.request import ListGroupsRequest
from kio.schema.list_groups.v5.response import ListGroupsResponse
from kio.schema.share_group_describe.v1.request import ShareGroupDescribeRequest
from kio.schema.share_group_describe.v1.response import DescribedGroup
from kio.schema.share_group_describe.v1.response import ShareGroupDescribeResponse
from kio.schema.types import GroupId
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from millpond.cli.client import Cluster
from millpond.cli.errors import CliError
from millpond.cli.kafka_wire import ApiNotServed
from millpond.cli.kafka_wire import KafkaWire
from millpond.cli.kafka_wire import join_host_port
from millpond.cli.kafka_wire import split_host_port
from millpond.cli.offsets import format_age

SHARE_GROUPS = "share groups"
DEFAULT_HTTP_SERVER = "127.0.0.1:8080"
# The /metrics figures are extras: a describe should not wait long for a broker without them.
HTTP_TIMEOUT_S = 3.0
# Millpond's per-partition share-group gauges, as the columns that show them.
SHARE_METRICS = {
    "millpond_share_records_in_flight": "in flight",
    "millpond_share_records_available": "available",
    "millpond_share_records_archived": "archived",
    "millpond_share_oldest_available_age_seconds": "oldest available",
}


def check_http_server(value: str) -> str:
    """Typer callback: HOST:PORT or a usage error."""
    try:
        split_host_port(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return value


HttpServer = Annotated[
    str,
    typer.Option(
        "--http-server",
        envvar="MILLPOND_HTTP_SERVER",
        metavar="HOST:PORT",
        callback=check_http_server,
        help="Millpond's HTTP listener, read for share-group figures the Kafka protocol lacks.",
    ),
]


def list_share_groups(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """(state, assignor) of each share group; empty when the cluster does not serve them.

    Asks every broker, since each lists only the groups it coordinates.
    """
    found: dict[str, tuple[str, str]] = {}
    for broker in cluster.metadata().brokers.values():
        with KafkaWire(join_host_port(str(broker.host), int(broker.port)), cluster.timeout) as wire:
            try:
                listing = wire.call(
                    ListGroupsRequest(types_filter=("share",)), ListGroupsResponse, SHARE_GROUPS
                )
            except ApiNotServed:
                return {}
            if listing.error_code != ErrorCode.none:
                raise CliError(f"listing share groups on {wire.address}: {listing.error_code.name}")
            # A broker before v5's types filter would list every group; keep only share ones.
            states = {g.group_id: g.group_state for g in listing.groups if g.group_type == "share"}
            if not states:
                continue
            try:
                described = _share_describe(wire, list(states))
            except ApiNotServed:
                described = {}
        for group_id, state in states.items():
            group = described.get(group_id)
            found[group_id] = (state, group.assignor_name if group is not None else "-")
    return found


def _share_describe(wire: KafkaWire, group_ids: list[str]) -> dict[str, DescribedGroup]:
    """The share groups among `group_ids` that `wire`'s broker describes without error."""
    answer = wire.call(
        ShareGroupDescribeRequest(
            group_ids=tuple(GroupId(g) for g in group_ids), include_authorized_operations=False
        ),
        ShareGroupDescribeResponse,
        SHARE_GROUPS,
    )
    return {g.group_id: g for g in answer.groups if g.error_code == ErrorCode.none}


@dataclass(frozen=True, slots=True)
class ShareGroupView:
    described: DescribedGroup
    coordinator: int
    # (start offset, lag) per partition the group has state for; None where there is none.
    offsets: dict[tuple[str, int], tuple[int | None, int | None]]


def _share_group_at(wire: KafkaWire, group: str, coordinator: int) -> ShareGroupView | None:
    described = _share_describe(wire, [group]).get(group)
    if described is None:
        return None
    answer = wire.call(
        DescribeShareGroupOffsetsRequest(
            groups=(DescribeShareGroupOffsetsRequestGroup(group_id=GroupId(group), topics=None),)
        ),
        DescribeShareGroupOffsetsResponse,
        SHARE_GROUPS,
    )
    offsets: dict[tuple[str, int], tuple[int | None, int | None]] = {}
    for result in answer.groups:
        if result.error_code != ErrorCode.none:
            reason = result.error_message or result.error_code.name
            raise CliError(f"fetching the offsets of share group {group!r}: {reason}")
        for topic in result.topics:
            for partition in topic.partitions:
                if partition.error_code == ErrorCode.none:
                    offsets[topic.topic_name, partition.partition_index] = (
                        partition.start_offset if partition.start_offset >= 0 else None,
                        partition.lag if partition.lag >= 0 else None,
                    )
    return ShareGroupView(described, coordinator, offsets)


def find_share_group(cluster: Cluster, group: str) -> ShareGroupView | None:
    """The share group `group` with its offsets; None when the cluster has no such share group
    (it may still be a consumer group) or serves no share groups at all."""
    with KafkaWire.to_bootstrap(cluster.bootstrap, cluster.timeout) as wire:
        try:
            wire.check_served(ShareGroupDescribeRequest, SHARE_GROUPS)
        except ApiNotServed:
            return None
        node, address = wire.find_coordinator(group)
        if address == wire.address:
            return _share_group_at(wire, group, node)
    with KafkaWire(address, cluster.timeout) as coordinator:
        return _share_group_at(coordinator, group, node)


def _share_metrics(
    http_server: str, group: str
) -> tuple[dict[tuple[str, int], dict[str, float]], str | None]:
    """Millpond's SHARE_METRICS for `group` by partition, and why there are none if unreadable."""
    host, port = split_host_port(http_server)
    connection = HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
    try:
        connection.request("GET", "/metrics")
        reply = connection.getresponse()
        text = reply.read().decode(errors="replace")
    except (OSError, HTTPException) as error:
        return {}, (error.strerror if isinstance(error, OSError) else None) or str(error)
    finally:
        connection.close()
    if reply.status != 200:
        return {}, f"HTTP {reply.status} {reply.reason}"
    figures: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name in SHARE_METRICS and labels.get("group") == group:
                    key = (labels.get("topic", ""), int(labels.get("partition", "-1")))
                    figures[key][sample.name] = sample.value
    except ValueError as error:
        return {}, f"not Prometheus text: {error}"
    return dict(figures), None


def _share_figure(figures: dict[str, float], name: str) -> str:
    value = figures.get(name)
    if value is None:
        return "-"
    if name == "millpond_share_oldest_available_age_seconds":
        return format_age(value)
    return str(int(value))


def print_share_group(group: str, share: ShareGroupView, http_server: str) -> None:
    figures, problem = _share_metrics(http_server, group)
    described = share.described
    console = Console()
    console.print(
        f"[bold]{escape(group)}[/bold]  state: {described.group_state}  type: share  "
        f"assignor: {described.assignor_name}  group epoch: {described.group_epoch}  "
        f"coordinator: {share.coordinator}  members: {len(described.members)}"
    )
    assigned: set[tuple[str, int]] = set()
    if described.members:
        table = Table("member", "client id", "host", "assigned partitions")
        for member in described.members:
            partitions = sorted(
                (topic.topic_name or str(topic.topic_id), int(partition))
                for topic in member.assignment.topic_partitions
                for partition in topic.partitions
            )
            assigned.update(partitions)
            table.add_row(
                member.member_id,
                member.client_id,
                member.client_host,
                ", ".join(f"{t}:{p}" for t, p in partitions) or "-",
            )
        console.print(table)
    partitions = sorted(set(share.offsets) | assigned)
    if not partitions:
        console.print("no share-partition state and no assigned partitions")
        return
    table = Table("topic", "partition", "start offset", "lag", *SHARE_METRICS.values())
    for tp in partitions:
        start, lag = share.offsets.get(tp, (None, None))
        table.add_row(
            tp[0],
            str(tp[1]),
            "-" if start is None else str(start),
            "-" if lag is None else str(lag),
            *(_share_figure(figures.get(tp, {}), name) for name in SHARE_METRICS),
        )
    console.print(table)
    if problem is not None:
        console.print(
            f"[dim]({', '.join(SHARE_METRICS.values())}: no figures from Millpond's /metrics at "
            f"{escape(http_server)}: {escape(problem)}; see --http-server)[/dim]"
        )
