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
from millpond.registry.service import NotWritten
from millpond.registry.service import Records
from millpond.registry.service import SchemaRegistry
from millpond.registry.store import RegistryState
from millpond.registry.store import replay
from millpond.storage.log_manager import SCHEMAS_TOPIC
from millpond.storage.log_manager import LogManager

logger = logging.getLogger(__name__)

_SEGMENT_BYTES = 16 * 1024 * 1024


def open_registry(
    logs: LogManager, group_commit: GroupCommit, appended: AppendSignal, clock: Clock
) -> tuple[SchemaRegistry, int]:
    """Replay `_schemas` (created at the first start, before any client could create or
    auto-create it with other configs); returns the registry and how many records were read.
    A `_schemas` that is not compacted (made by hand, or by an older broker) is read but never
    written: its records could be deleted by retention, and ids handed out again."""
    topic = logs.topics.get(SCHEMAS_TOPIC)
    if topic is None:
        configs = {"cleanup.policy": "compact", "segment.bytes": str(_SEGMENT_BYTES)}
        topic = logs.create_topic(SCHEMAS_TOPIC, 1, configs)
    log = topic.partitions[0].log
    state = RegistryState()
    records = [(record.key, record.value) for record in read_records(log, SCHEMAS_TOPIC)]
    for warning in replay(state, records):
        logger.warning("skipping unreadable %s record: %s", SCHEMAS_TOPIC, warning)
    refusal = None
    if topic.config.cleanup_policy != "compact":
        refusal = (
            f"{SCHEMAS_TOPIC} has cleanup.policy={topic.config.cleanup_policy}, not compact: "
            "the registry is read-only until it is recreated compacted"
        )
        logger.error("%s", refusal)

    async def append(batch: Records) -> None:
        """Raises NotWritten if nothing reached the log, or OSError if the records are in
        the log but not known to be durable."""
        if refusal is not None:
            raise NotWritten(refusal)
        records = [NewRecord(key, value, clock.wall_ms()) for key, value in batch]
        try:
            group_commit.check_writable(log)
        except StorageError as error:
            raise NotWritten(str(error)) from error
        try:
            await append_durably(log, records, group_commit, appended, (SCHEMAS_TOPIC, 0))
        except StorageError as error:
            raise OSError(str(error)) from error

    return SchemaRegistry(state, append), len(records)
