"""The registry's shell over its topic: `_schemas` (one partition, compacted) is replayed into a
RegistryState at start, and every change is appended to it and fsynced before it is applied."""

from __future__ import annotations

import logging

from millpond.broker.append_signal import AppendSignal
from millpond.broker.group_commit import GroupCommit
from millpond.broker.group_commit import StorageError
from millpond.clock import Clock
from millpond.coordinator.internal_log import append_durably
from millpond.coordinator.internal_log import read_records
from millpond.protocol.record_codec import NewRecord
from millpond.registry.service import Records
from millpond.registry.service import SchemaRegistry
from millpond.registry.store import RegistryState
from millpond.registry.store import replay
from millpond.storage.log_manager import SCHEMAS_TOPIC
from millpond.storage.log_manager import LogManager
from millpond.storage.log_manager import TopicError

logger = logging.getLogger(__name__)

_SEGMENT_BYTES = 16 * 1024 * 1024


def open_registry(
    logs: LogManager, group_commit: GroupCommit, appended: AppendSignal, clock: Clock
) -> tuple[SchemaRegistry, int]:
    """Replay `_schemas`; returns the registry and how many records were read. The topic is
    created by the first change, so a broker that never registers a schema has none."""
    state = RegistryState()
    topic = logs.topics.get(SCHEMAS_TOPIC)
    replayed = 0
    if topic is not None:
        stored = read_records(topic.partitions[0].log, SCHEMAS_TOPIC)
        records = [(record.key, record.value) for record in stored]
        replayed = len(records)
        for warning in replay(state, records):
            logger.warning("skipping unreadable %s record: %s", SCHEMAS_TOPIC, warning)

    async def append(batch: Records) -> None:
        topic = logs.topics.get(SCHEMAS_TOPIC)
        if topic is None:
            configs = {"cleanup.policy": "compact", "segment.bytes": str(_SEGMENT_BYTES)}
            try:
                topic = logs.create_topic(SCHEMAS_TOPIC, 1, configs)
            except TopicError as error:
                raise OSError(f"cannot create {SCHEMAS_TOPIC}: {error}") from error
        records = [NewRecord(key, value, clock.wall_ms()) for key, value in batch]
        try:
            await append_durably(
                topic.partitions[0].log, records, group_commit, appended, (SCHEMAS_TOPIC, 0)
            )
        except StorageError as error:
            raise OSError(str(error)) from error

    return SchemaRegistry(state, append), replayed
