"""Raw share-group requests for the integration tests (test_share_*.py): kio requests built
and sent with WireClient, and small readers of their answers.

Share groups (KIP-932) on the wire: raw ShareGroupHeartbeat, ShareFetch, ShareAcknowledge,
group configs and the share-group admin APIs against the real broker. Each case is an answer a
share consumer (librdkafka) or an admin client relies on, as Kafka gives it.

Most groups here set share.auto.offset.reset=earliest first, so records produced before the
group's first fetch are delivered; the default (latest) has its own test. Tests that need no
broker of their own share one (module-scoped) and keep to their own topic and group names.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from typing import Any

from kio.schema.describe_configs.v4 import request as describe_configs_v4
from kio.schema.errors import ErrorCode
from kio.schema.incremental_alter_configs.v1 import request as alter_configs_v1
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.share_acknowledge.v1 import request as share_ack_v1
from kio.schema.share_acknowledge.v2 import request as share_ack_v2
from kio.schema.share_fetch.v1 import request as share_fetch_v1
from kio.schema.share_group_heartbeat.v1 import request as heartbeat_v1

from millpond.protocol.record_codec import iter_records
from millpond.protocol.records import iter_batches
from tests.integration.test_wire import produce
from tests.support.batches import build_batch
from tests.support.wire import WireClient

GROUP_RESOURCE = 32
SET, DELETE = 0, 1
DEFAULT_CONFIG, DYNAMIC_GROUP_CONFIG = 5, 8  # DescribeConfigs config_source
GAP, ACCEPT, RELEASE, REJECT, RENEW = 0, 1, 2, 3, 4
EARLIEST = {"share.auto.offset.reset": "earliest"}

PartitionKey = tuple[uuid.UUID, int]
# (first offset, last offset, acknowledge types) per partition
Acks = dict[PartitionKey, list[tuple[int, int, tuple[int, ...]]]]


# -- requests --------------------------------------------------------------------------------------


def topic_id(client: WireClient, name: str) -> uuid.UUID:
    request = metadata_v12.MetadataRequest(
        topics=(metadata_v12.MetadataRequestTopic(name=name, topic_id=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    topic = client.call(request).topics[0]
    assert topic.error_code == ErrorCode.none, topic
    assert topic.topic_id is not None
    assert topic.topic_id.int != 0
    return topic.topic_id


def topic_exists(client: WireClient, name: str) -> bool:
    request = metadata_v12.MetadataRequest(
        topics=(metadata_v12.MetadataRequestTopic(name=name, topic_id=None),),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    return client.call(request).topics[0].error_code == ErrorCode.none


def produce_values(client: WireClient, topic: str, *values: bytes, partition: int = 0) -> int:
    """One batch holding the values; returns its base offset."""
    response = produce(client, topic, bytes(build_batch(values)), partition)
    assert response.error_code == ErrorCode.none, response
    return int(response.base_offset)


def heartbeat(
    client: WireClient,
    group: str,
    member: str,
    epoch: int,
    topics: Iterable[str] | None = None,
    rack: str | None = None,
) -> Any:
    request = heartbeat_v1.ShareGroupHeartbeatRequest(
        group_id=group,
        member_id=member,
        member_epoch=epoch,
        rack_id=rack,
        subscribed_topic_names=None if topics is None else tuple(topics),
    )
    return client.call(request)


def join(client: WireClient, group: str, member: str, *topics: str) -> Any:
    response = heartbeat(client, group, member, 0, topics)
    assert response.error_code == ErrorCode.none, response
    return response


def assigned(response: Any) -> dict[uuid.UUID, set[int]]:
    assert response.assignment is not None
    return {t.topic_id: set(t.partitions) for t in response.assignment.topic_partitions}


def alter_group_configs(client: WireClient, group: str, changes: dict[str, str | None]) -> Any:
    """SET (value) or DELETE (None) group configs; returns the resource's result."""
    request = alter_configs_v1.IncrementalAlterConfigsRequest(
        resources=(
            alter_configs_v1.AlterConfigsResource(
                resource_type=GROUP_RESOURCE,
                resource_name=group,
                configs=tuple(
                    alter_configs_v1.AlterableConfig(
                        name=name,
                        config_operation=SET if value is not None else DELETE,
                        value=value,
                    )
                    for name, value in changes.items()
                ),
            ),
        ),
        validate_only=False,
    )
    return client.call(request).responses[0]


def set_group_configs(client: WireClient, group: str, changes: dict[str, str | None]) -> None:
    result = alter_group_configs(client, group, changes)
    assert result.error_code == ErrorCode.none, result


def group_configs(client: WireClient, group: str) -> dict[str, Any]:
    request = describe_configs_v4.DescribeConfigsRequest(
        resources=(
            describe_configs_v4.DescribeConfigsResource(
                resource_type=GROUP_RESOURCE, resource_name=group, configuration_keys=None
            ),
        ),
        include_synonyms=False,
        include_documentation=False,
    )
    result = client.call(request).results[0]
    assert result.error_code == ErrorCode.none, result
    return {entry.name: entry for entry in result.configs}


def _by_topic(keys: Iterable[PartitionKey]) -> dict[uuid.UUID, list[int]]:
    topics: dict[uuid.UUID, list[int]] = {}
    for tid, index in keys:
        topics.setdefault(tid, []).append(index)
    return topics


def share_fetch(
    client: WireClient,
    group: str,
    member: str,
    epoch: int,
    partitions: Iterable[PartitionKey] = (),
    acks: Acks | None = None,
    max_wait_ms: int = 0,
    forgotten: Iterable[PartitionKey] = (),
    send_only: bool = False,
) -> Any:
    acks = acks or {}
    keys = list(dict.fromkeys([*partitions, *acks]))
    request = share_fetch_v1.ShareFetchRequest(
        group_id=group,
        member_id=member,
        share_session_epoch=epoch,
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=500,
        batch_size=500,
        topics=tuple(
            share_fetch_v1.FetchTopic(
                topic_id=tid,
                partitions=tuple(
                    share_fetch_v1.FetchPartition(
                        partition_index=index,
                        acknowledgement_batches=tuple(
                            share_fetch_v1.AcknowledgementBatch(
                                first_offset=first, last_offset=last, acknowledge_types=types
                            )
                            for first, last, types in acks.get((tid, index), [])
                        ),
                    )
                    for index in indexes
                ),
            )
            for tid, indexes in _by_topic(keys).items()
        ),
        forgotten_topics_data=tuple(
            share_fetch_v1.ForgottenTopic(topic_id=tid, partitions=tuple(indexes))
            for tid, indexes in _by_topic(forgotten).items()
        ),
    )
    if send_only:
        return client.send(request)
    return client.call(request)


def share_acknowledge(
    client: WireClient,
    group: str,
    member: str,
    epoch: int,
    acks: Acks,
    version: int = 1,
    renew: bool = False,
) -> Any:
    schema: Any = share_ack_v2 if version == 2 else share_ack_v1
    topics = tuple(
        schema.AcknowledgeTopic(
            topic_id=tid,
            partitions=tuple(
                schema.AcknowledgePartition(
                    partition_index=index,
                    acknowledgement_batches=tuple(
                        schema.AcknowledgementBatch(
                            first_offset=first, last_offset=last, acknowledge_types=types
                        )
                        for first, last, types in acks[(tid, index)]
                    ),
                )
                for index in indexes
            ),
        )
        for tid, indexes in _by_topic(acks).items()
    )
    fields: dict[str, Any] = {
        "group_id": group,
        "member_id": member,
        "share_session_epoch": epoch,
        "topics": topics,
    }
    if version == 2:
        fields["is_renew_ack"] = renew
    return client.call(schema.ShareAcknowledgeRequest(**fields))


def partition_of(response: Any, key: PartitionKey) -> Any:
    """The response's entry for the partition, or None when it is not in the response."""
    for topic in response.responses:
        if topic.topic_id == key[0]:
            for partition in topic.partitions:
                if partition.partition_index == key[1]:
                    return partition
    return None


def ranges(partition: Any) -> list[tuple[int, int, int]]:
    """(first offset, last offset, delivery count) of each AcquiredRecords range."""
    if partition is None:
        return []
    return [(r.first_offset, r.last_offset, r.delivery_count) for r in partition.acquired_records]


def acquired_offsets(partition: Any) -> list[int]:
    return [o for first, last, _ in ranges(partition) for o in range(first, last + 1)]


def acquired_values(partition: Any) -> dict[int, bytes | None]:
    """Offset -> value of the records inside the acquired ranges (the rest is dropped, as a
    client does)."""
    wanted = set(acquired_offsets(partition))
    data = bytes(partition.records)
    return {
        record.offset: record.value
        for header in iter_batches(data)
        for record in iter_records(data, header)
        if record.offset in wanted
    }


class ShareMember:
    """One share consumer: its own connection and member id, tracking its session epoch as
    librdkafka does (+1 after every successful ShareFetch or ShareAcknowledge)."""

    def __init__(self, bootstrap: str, group: str, member_id: str) -> None:
        self.client = WireClient(bootstrap)
        self.group = group
        self.member_id = member_id
        self.epoch = 0

    def __enter__(self) -> ShareMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def join(self, *topics: str) -> Any:
        return join(self.client, self.group, self.member_id, *topics)

    def leave(self) -> None:
        response = heartbeat(self.client, self.group, self.member_id, -1)
        assert (response.error_code, response.member_epoch) == (ErrorCode.none, -1), response

    def fetch(self, *keys: PartitionKey, acks: Acks | None = None, max_wait_ms: int = 0) -> Any:
        response = share_fetch(
            self.client, self.group, self.member_id, self.epoch, keys, acks, max_wait_ms
        )
        assert response.error_code == ErrorCode.none, response
        self._advance()
        return response

    def acknowledge(self, acks: Acks, version: int = 1, renew: bool = False) -> Any:
        response = share_acknowledge(
            self.client, self.group, self.member_id, self.epoch, acks, version, renew
        )
        assert response.error_code == ErrorCode.none, response
        self._advance()
        return response

    def close_session(self, acks: Acks | None = None) -> Any:
        response = share_fetch(self.client, self.group, self.member_id, -1, (), acks)
        assert response.error_code == ErrorCode.none, response
        self.epoch = 0
        return response

    def _advance(self) -> None:
        if self.epoch != -1:
            self.epoch += 1


def ack_code(response: Any, key: PartitionKey) -> int:
    """A ShareAcknowledge partition's error code."""
    partition = partition_of(response, key)
    assert partition is not None, response
    return int(partition.error_code)


def fresh(prefix: str) -> str:
    """A name no other test on a shared broker uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
