"""`millpond topics …`: list, describe, create and delete topics, as kafka-topics does."""

from __future__ import annotations

from typing import Annotated
from typing import Any

import typer
from confluent_kafka import TopicCollection
from confluent_kafka import TopicPartition

# confluent-kafka 2.16 re-exports these without __all__, which mypy --strict does not
# count as an export; this is still their documented import path.
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]
from confluent_kafka.admin import ConfigSource  # type: ignore[attr-defined]
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from confluent_kafka.admin import ResourceType  # type: ignore[attr-defined]
from rich.console import Console
from rich.table import Table

from millpond.cli.client import DEFAULT_BOOTSTRAP
from millpond.cli.client import BootstrapServer
from millpond.cli.client import Cluster
from millpond.cli.client import parse_configs
from millpond.cli.client import reports_errors
from millpond.cli.errors import UsageError

app = typer.Typer(
    help="List, describe, create and delete topics.", no_args_is_help=True, add_completion=False
)


def _node(node: Any) -> str:
    return "-" if node is None else str(node.id)


@app.command("list")
@reports_errors
def list_topics(bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP) -> None:
    """List the topics of the cluster with their partition counts."""
    with Cluster(bootstrap) as cluster:
        names = sorted(cluster.metadata().topics)
        descriptions = {}
        if names:
            futures = cluster.admin.describe_topics(
                TopicCollection(names), request_timeout=cluster.timeout
            )
            descriptions = {
                name: cluster.result(future, f"describe topic {name!r}")
                for name, future in futures.items()
            }
    table = Table("topic", "partitions", "internal")
    for name in names:
        description = descriptions[name]
        table.add_row(
            name, str(len(description.partitions)), "yes" if description.is_internal else "no"
        )
    Console().print(table)


@app.command()
@reports_errors
def describe(
    topic: Annotated[str, typer.Argument(help="The topic to describe.")],
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Partitions (leader, replicas, offsets) and the non-default configs of one topic."""
    with Cluster(bootstrap) as cluster:
        metadata = cluster.topic(topic)
        description = cluster.result(
            cluster.admin.describe_topics(
                TopicCollection([topic]), request_timeout=cluster.timeout
            )[topic],
            f"describe topic {topic!r}",
        )
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = cluster.result(
            cluster.admin.describe_configs([resource], request_timeout=cluster.timeout)[resource],
            f"describe configs of {topic!r}",
        )
        consumer = cluster.consumer()
        watermarks = {
            partition: consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=cluster.timeout
            )
            for partition in sorted(metadata.partitions)
        }

    console = Console()
    console.print(
        f"[bold]{topic}[/bold]  partitions: {len(description.partitions)}  "
        f"topic id: {description.topic_id}  internal: {'yes' if description.is_internal else 'no'}"
    )
    partitions = Table("partition", "leader", "replicas", "isr", "log start", "log end")
    for info in sorted(description.partitions, key=lambda p: p.id):
        low, high = watermarks.get(info.id, (None, None))
        partitions.add_row(
            str(info.id),
            _node(info.leader),
            ",".join(_node(node) for node in info.replicas),
            ",".join(_node(node) for node in info.isr),
            "-" if low is None else str(low),
            "-" if high is None else str(high),
        )
    console.print(partitions)
    overrides = sorted((name, entry) for name, entry in configs.items() if not entry.is_default)
    if overrides:
        table = Table("config", "value", "source")
        for name, entry in overrides:
            value = "(sensitive)" if entry.is_sensitive else str(entry.value)
            table.add_row(name, value, _source_name(entry.source))
        console.print(table)
    else:
        console.print("configs: all defaults")


def _source_name(source: int) -> str:
    try:
        return str(ConfigSource(source).name)
    except ValueError:
        return str(source)


@app.command()
@reports_errors
def create(
    topic: Annotated[str, typer.Argument(help="The topic to create.")],
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="Partition count.")] = 1,
    replication_factor: Annotated[
        int, typer.Option("--replication-factor", min=1, help="Replicas of each partition.")
    ] = 1,
    configs: Annotated[
        list[str] | None,
        typer.Option("--config", help="A topic config as key=value (repeatable)."),
    ] = None,
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Create a topic."""
    settings = parse_configs(configs or [])
    if not topic.strip():
        raise UsageError("the topic name cannot be empty")
    with Cluster(bootstrap) as cluster:
        cluster.metadata()
        new_topic = NewTopic(
            topic,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=settings,
        )
        futures = cluster.admin.create_topics(
            [new_topic], request_timeout=cluster.timeout, operation_timeout=cluster.timeout
        )
        cluster.result(futures[topic], f"cannot create topic {topic!r}")
    typer.echo(f"created topic {topic} with {partitions} partition(s)")


@app.command()
@reports_errors
def delete(
    topic: Annotated[str, typer.Argument(help="The topic to delete.")],
    bootstrap: BootstrapServer = DEFAULT_BOOTSTRAP,
) -> None:
    """Delete a topic and all its records."""
    with Cluster(bootstrap) as cluster:
        cluster.topic(topic)
        futures = cluster.admin.delete_topics(
            [topic], request_timeout=cluster.timeout, operation_timeout=cluster.timeout
        )
        cluster.result(futures[topic], f"cannot delete topic {topic!r}")
    typer.echo(f"deleted topic {topic}")
