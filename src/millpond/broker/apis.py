"""The APIs this broker serves, the versions it advertises, and the handler for each.

Ranges keep old minimums on purpose: Debian's kcat (librdkafka 2.0.2) enables record format v2
only if Produce 3 and Fetch 4 are inside our ranges, idempotence only with InitProducerId 0, and
time-based offsets only with ListOffsets 1 (shared/notes/groups-and-idempotence.md §1). Maximums
stop where every field of the version is implemented: Fetch 13+ would need topic-id fetches,
Produce 10+ KIP-951 leader hints.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.protocol import Entity

from millpond.broker.context import BrokerContext
from millpond.protocol.build import build
from millpond.protocol.codec import RawResponse
from millpond.protocol.codec import RequestHeader
from millpond.protocol.codec import response_type

from .handlers.create_partitions import handle_create_partitions
from .handlers.create_topics import handle_create_topics
from .handlers.delete_groups import handle_delete_groups
from .handlers.delete_records import handle_delete_records
from .handlers.delete_topics import handle_delete_topics
from .handlers.describe_cluster import handle_describe_cluster
from .handlers.describe_configs import handle_describe_configs
from .handlers.describe_groups import handle_describe_groups
from .handlers.fetch import handle_fetch
from .handlers.find_coordinator import handle_find_coordinator
from .handlers.heartbeat import handle_heartbeat
from .handlers.incremental_alter_configs import handle_incremental_alter_configs
from .handlers.init_producer_id import handle_init_producer_id
from .handlers.join_group import handle_join_group
from .handlers.leave_group import handle_leave_group
from .handlers.list_groups import handle_list_groups
from .handlers.list_offsets import handle_list_offsets
from .handlers.metadata import handle_metadata
from .handlers.offset_commit import handle_offset_commit
from .handlers.offset_delete import handle_offset_delete
from .handlers.offset_fetch import handle_offset_fetch
from .handlers.produce import handle_produce
from .handlers.share_acknowledge import handle_share_acknowledge
from .handlers.share_fetch import handle_share_fetch
from .handlers.share_group_describe import handle_share_group_describe
from .handlers.share_group_heartbeat import handle_share_group_heartbeat
from .handlers.share_group_offsets import handle_alter_share_group_offsets
from .handlers.share_group_offsets import handle_delete_share_group_offsets
from .handlers.share_group_offsets import handle_describe_share_group_offsets
from .handlers.sync_group import handle_sync_group

Handler = Callable[
    [BrokerContext, RequestHeader, Any], Coroutine[Any, Any, Entity | RawResponse | None]
]


@dataclass(frozen=True, slots=True)
class Api:
    key: int
    name: str
    min_version: int
    max_version: int
    handler: Handler


async def handle_api_versions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Entity:
    return api_versions_response(header.api_version, ErrorCode.none)


APIS: dict[int, Api] = {
    api.key: api
    for api in (
        Api(0, "Produce", 3, 9, handle_produce),
        Api(1, "Fetch", 4, 12, handle_fetch),
        Api(2, "ListOffsets", 1, 7, handle_list_offsets),
        Api(3, "Metadata", 0, 12, handle_metadata),
        Api(8, "OffsetCommit", 2, 9, handle_offset_commit),
        Api(9, "OffsetFetch", 1, 9, handle_offset_fetch),
        Api(10, "FindCoordinator", 0, 4, handle_find_coordinator),
        Api(11, "JoinGroup", 0, 8, handle_join_group),
        Api(12, "Heartbeat", 0, 4, handle_heartbeat),
        Api(13, "LeaveGroup", 0, 5, handle_leave_group),
        Api(14, "SyncGroup", 0, 5, handle_sync_group),
        Api(15, "DescribeGroups", 0, 5, handle_describe_groups),
        Api(16, "ListGroups", 0, 5, handle_list_groups),
        Api(18, "ApiVersions", 0, 3, handle_api_versions),
        Api(19, "CreateTopics", 2, 7, handle_create_topics),
        Api(20, "DeleteTopics", 1, 6, handle_delete_topics),
        Api(21, "DeleteRecords", 0, 2, handle_delete_records),
        Api(22, "InitProducerId", 0, 4, handle_init_producer_id),
        Api(32, "DescribeConfigs", 1, 4, handle_describe_configs),
        Api(37, "CreatePartitions", 0, 3, handle_create_partitions),
        Api(42, "DeleteGroups", 0, 2, handle_delete_groups),
        Api(44, "IncrementalAlterConfigs", 0, 1, handle_incremental_alter_configs),
        Api(47, "OffsetDelete", 0, 0, handle_offset_delete),
        Api(60, "DescribeCluster", 0, 1, handle_describe_cluster),
        Api(76, "ShareGroupHeartbeat", 1, 1, handle_share_group_heartbeat),
        Api(77, "ShareGroupDescribe", 1, 1, handle_share_group_describe),
        Api(78, "ShareFetch", 1, 1, handle_share_fetch),
        Api(79, "ShareAcknowledge", 1, 2, handle_share_acknowledge),
        Api(90, "DescribeShareGroupOffsets", 0, 1, handle_describe_share_group_offsets),
        Api(91, "AlterShareGroupOffsets", 0, 0, handle_alter_share_group_offsets),
        Api(92, "DeleteShareGroupOffsets", 0, 0, handle_delete_share_group_offsets),
    )
}

SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    key: (api.min_version, api.max_version) for key, api in APIS.items()
}


def api_versions_response(version: int, error: ErrorCode) -> Entity:
    """The ApiVersions answer; an unsupported request version gets a v0-shaped reply."""
    response = {
        "error_code": error,
        "api_keys": [
            {"api_key": api.key, "min_version": api.min_version, "max_version": api.max_version}
            for api in APIS.values()
        ],
        "throttle_time": datetime.timedelta(0),
    }
    return build(response_type(18, version), response)
